"""`ThreadsClient`'s side of evaluators (otel_threads.evaluations): which threads an
evaluator has yet to judge, and storing what it found, on a file or through a
collector's API (``POST /evaluations/pending``, ``POST /evaluations``).

On a file, each call opens it only for itself (read-only to list, to write to record),
so a collector can start between two calls; the next call then goes through its API.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

import duckdb

from otel_threads.client_errors import ThreadNotFoundError, ThreadsClientError
from otel_threads.evaluations import (
    EvaluationResult,
    PendingThread,
    check_evaluator_name,
    pending_threads,
    record_evaluation,
)

if TYPE_CHECKING:
    from otel_threads.client import ThreadsClient

__all__ = ["EvaluationsClient"]


class EvaluationsClient:
    """The evaluation methods of `ThreadsClient` (a mixin)."""

    def pending_evaluations(
        self: ThreadsClient, evaluator: str, quiet_for_s: float = 600.0, limit: int = 100
    ) -> list[PendingThread]:
        """Up to ``limit`` threads ``evaluator`` has yet to judge at their current last
        turn, least recently updated first: those that have ended or been quiet for
        ``quiet_for_s`` seconds (by the collector's clock when one answers), with no
        turn still running. ValueError for a bad argument."""
        check_evaluator_name(evaluator)
        if self._api() is not None:
            body = {"evaluator": evaluator, "quiet_for_s": quiet_for_s, "limit": limit}
            out = self._request("POST", "/evaluations/pending", body)
            return [PendingThread(t["thread_id"], t["last_turn_id"]) for t in out["threads"]]
        quiet_before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(
            seconds=quiet_for_s
        )
        with self._connection() as con:
            return pending_threads(con, evaluator, quiet_before, limit)

    def record_evaluation(
        self: ThreadsClient,
        evaluator: str,
        thread_id: str,
        last_turn_id: str | None,
        results: list[EvaluationResult | dict[str, Any]],
        error: str | None = None,
    ) -> bool:
        """Store what ``evaluator`` found in ``thread_id`` at its last turn
        ``last_turn_id`` (results as annotations with source = the evaluator's name),
        or that it failed (``error``, one line), in one transaction. False, and nothing
        stored, when that evaluation was stored already. `ThreadNotFoundError` for an
        unknown thread."""
        rows = [r.to_dict() if isinstance(r, EvaluationResult) else r for r in results]
        if self._api() is not None:
            body = {
                "evaluator": evaluator,
                "thread_id": thread_id,
                "last_turn_id": last_turn_id,
                "results": rows,
                "error": error,
            }
            try:
                return bool(self._request("POST", "/evaluations", body)["recorded"])
            except ThreadsClientError as err:
                if err.status == 404:
                    raise ThreadNotFoundError(thread_id, str(self.url or self.path)) from None
                raise
        with self._writable() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                recorded = record_evaluation(con, evaluator, thread_id, last_turn_id, rows, error)
                con.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                if isinstance(exc, KeyError):
                    raise ThreadNotFoundError(thread_id, str(self.path)) from None
                raise
            return recorded
