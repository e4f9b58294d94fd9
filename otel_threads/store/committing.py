"""`Committing`: one group commit of the writer: the batches of a transaction, forks
screened (otel_threads.store.forks), rows inserted without redeliveries
(otel_threads.store.insert), derivation told; and, when a commit fails, which batch
had the bad data or which fault of the store it was.

A mixin of `otel_threads.store.writer.Writer`, on the writer's thread: it uses the
writer's ``store``, ``_forks``, ``_seq``, ``_seen``, ``_cond``, ``stats``, ``_last_commit`` and
``retry_after_s``.
"""

from __future__ import annotations

import contextlib
import logging
import time

import duckdb
import pyarrow as pa

from otel_threads.store.errors import StoreUnavailable, _Item
from otel_threads.store.health import classify
from otel_threads.store.insert import insert_batch
from otel_threads.store.trace_numbers import SeenTraces

__all__ = ["OOM_WAIT_S", "Committing"]

_logger = logging.getLogger("otel_threads.store.writer")

#: Longest wait for derivation (or retention) to let go of memory before a commit that
#: ran out of it is tried again (`Committing._commit_alone`).
OOM_WAIT_S = 30.0


class Committing:
    """Commits batches for the writer."""

    def _write(self, items: list[_Item]) -> list[_Item]:
        """Commit ``items``; returns those committed (the others' futures have failed).

        An error of the store itself (`classify`) fails them all and starts a fault; an
        error of the data is narrowed down to the item that has it."""
        committed: list[_Item] = []
        try:
            try:
                self._commit(items)
            except duckdb.OutOfMemoryException:
                if not self._commit_alone(items):
                    raise
            committed = items
        except Exception as exc:
            fault = classify(exc)
            if fault is not None:
                self.stats.failed_batches += 1
                self.store.commit_failed(fault)
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(StoreUnavailable(fault, self.retry_after_s))
            elif len(items) == 1:
                self._fail(items, exc)
            else:  # find the bad one: commit each alone
                for item in items:
                    try:
                        self._commit([item])
                        committed.append(item)
                    except Exception as single_exc:
                        self._fail([item], single_exc)
        finally:
            with self._cond:
                self.stats.pending_rows -= sum(i.rows for i in items)
                self._cond.notify_all()
        return committed

    def _commit_alone(self, items: list[_Item]) -> bool:
        """Ingest comes first: a commit that ran out of memory while derivation (or
        retention) held it is tried once more when they are done, with them kept out
        (for at most OOM_WAIT_S). False when they did not finish in time."""
        if not self.store.checkpoint_lock.acquire(timeout=OOM_WAIT_S):
            return False
        try:
            self._commit(items)
        finally:
            self.store.checkpoint_lock.release()
        return True

    def _fail(self, items: list[_Item], exc: Exception) -> None:
        self.stats.failed_batches += 1
        _logger.error("writing a batch failed: %s", exc)
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)

    def _commit(self, items: list[_Item]) -> None:
        try:
            self._commit_once(items)
        except duckdb.ConstraintException:
            if self._seen is None or not self._seen.missed:
                raise
            _logger.warning("the filter of numbered traces missed one: built again")
            self._commit_once(items)

    def _commit_once(self, items: list[_Item]) -> None:
        con = self.store.con
        assert con is not None
        started = time.perf_counter()
        received_at = time.time_ns() // 1000
        by_kind: dict[str, list[_Item]] = {}
        for item in items:
            by_kind.setdefault(item.kind, []).append(item)
        inserted: dict[str, int] = {}
        refused: set[str] = set()
        for item in items:
            item.rejected, item.error = 0, None
        con.execute("BEGIN TRANSACTION")
        try:
            for kind, group in by_kind.items():
                tables = [i.table for i in group]
                if kind == "spans" and self._forks is not None:
                    table, outcomes, refused = self._forks.screen(con, tables, received_at)
                    for item, (rejected, error) in zip(group, outcomes, strict=True):
                        item.rejected, item.error = rejected, error
                else:
                    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
                inserted[kind] = self._insert(con, kind, table, received_at)
            con.execute("COMMIT")
            if self._forks is not None:
                self._forks.committed(refused)
            self._last_commit = time.monotonic()
            self.store.committed()
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            if self._seen is not None:
                self._seen.rolled_back()
            raise
        self.stats.commit_seconds.observe(time.perf_counter() - started)
        for kind, group in by_kind.items():
            rows = sum(i.rows - i.rejected for i in group)
            self.stats.written[kind] += inserted[kind]
            self.stats.duplicates[kind] += rows - inserted[kind]

    def _insert(
        self, con: duckdb.DuckDBPyConnection, kind: str, table: pa.Table, received_at_us: int
    ) -> int:
        if self._seen is None or self._seen.outgrown:
            self._seen = SeenTraces(con)  # (sized anew, twice the traces numbered)
        inserted = insert_batch(
            con,
            kind,
            table,
            self._seq + 1,
            received_at_us,
            queue_derive=self.store.derives,
            seen=self._seen,
        )
        self._seq += table.num_rows
        return inserted
