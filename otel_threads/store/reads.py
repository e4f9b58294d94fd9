"""`Reads`: the reading side of a `Store`, and all the API (and the demo) get of it:
whether the store is healthy, cursors of their own, and one small write at a time
(`Reads.write`: annotations, evaluators' results). It is the API's
`otel_threads.reads_backend.ReadsBackend` on a file: each of those reads is the query
function of the same name on a cursor of its own.

Derivation runs behind the writer's commits (otel_threads.store.derive_worker): a read may find
the derived views a little behind what was acknowledged. Whether to wait for them is
the caller's choice, per read, and bounded: ``read(wait_s=...)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import duckdb

from otel_threads.paging import query_thread_page
from otel_threads.query import query_threads, query_turn_spans
from otel_threads.schemas import ThreadDetail, ThreadsQueryReq, ThreadsQueryRes
from otel_threads.span_messages import query_span_messages
from otel_threads.store.errors import StoreUnavailable
from otel_threads.store.health import Fault
from otel_threads.store.readonly_sql import run_readonly_arrow, run_readonly_sql
from otel_threads.store.store import Store
from otel_threads.versions import thread_version, threads_version

__all__ = ["Reads"]


#: Longest a small write (`Reads.write`) waits for derivation's refresh under way.
WRITE_WAIT_S = 30.0


class Reads:
    """Read ``store``: `fault`, `read`, `sync`, the API's reads (`ReadsBackend`); and
    `write`, for the API's small writes (never spans or log records: those go through
    the writer)."""

    #: the API writes annotations and evaluators' results to the file
    writes_refused: str | None = None

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def fault(self) -> Fault | None:
        """Why the store cannot commit now, or None when it can."""
        return self._store.fault

    def sync(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds until every acknowledged write is derived;
        whether it was."""
        return self._store.sync(timeout)

    @contextlib.contextmanager
    def read(self, wait_s: float = 0.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own on the store (`StoreClosed` while it is closed). With
        ``wait_s`` > 0 it first waits up to that long for derivation to catch up with
        what was acknowledged (read your writes); with 0 it reads what is derived now."""
        if wait_s > 0:
            self._store.sync(wait_s)
        with self._store.cursor() as con:
            yield con

    @contextlib.contextmanager
    def write(self, wait_s: float = WRITE_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor in a transaction of its own, committed on leaving the block (rolled
        back on an error), for a small write such as an annotation. It takes turns with
        derivation and checkpoints (the store's ``checkpoint_lock``: the two would
        conflict on the rows both write, thread_versions); `StoreUnavailable` while the
        store has a fault, TimeoutError when the turn does not come within ``wait_s``."""
        store = self._store
        if store.fault is not None:
            raise StoreUnavailable(store.fault, store.heal_interval_s)
        with store.cursor() as con:
            if not store.checkpoint_lock.acquire(timeout=wait_s):
                raise TimeoutError(f"the store stayed busy for {wait_s:.0f}s; try again")
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                    con.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(duckdb.Error):
                        con.execute("ROLLBACK")
                    raise
            finally:
                store.checkpoint_lock.release()
        store.committed()

    # -- the API's reads (otel_threads.reads_backend.ReadsBackend) ----------------------

    def threads_version(self) -> str | None:
        with self.read() as con:
            return threads_version(con)

    def threads(
        self, req: ThreadsQueryReq, page_sort: list[tuple[str, str]] | None = None
    ) -> ThreadsQueryRes:
        with self.read() as con:
            return query_threads(con, req, page_sort=page_sort)

    def thread_version(self, thread_id: str) -> str | None:
        with self.read() as con:
            return thread_version(con, thread_id)

    def thread_page(
        self, thread_id: str, through_turn: str | None = None, **paging: Any
    ) -> ThreadDetail | None:
        with self.read() as con:
            return query_thread_page(con, thread_id, through_turn, **paging)

    def turn_spans(self, thread_id: str, turn_id: str) -> list[dict[str, Any]] | None:
        with self.read() as con:
            return query_turn_spans(con, thread_id, turn_id)

    def span_messages(self, thread_id: str, turn_id: str, span_id: str) -> dict[str, Any] | None:
        with self.read() as con:
            return query_span_messages(con, thread_id, turn_id, span_id)

    def sql(self, sql: str) -> dict[str, Any]:
        with self.read() as con:
            return run_readonly_sql(con, sql)

    def arrow(self, sql: str, params: Any = None) -> bytes:
        with self.read() as con:
            return run_readonly_arrow(con, sql, params)
