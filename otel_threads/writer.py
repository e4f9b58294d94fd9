"""The writer: one thread that owns the DuckDB connection and group-commits batches.

Receivers (and the in-process exporters) hand it decoded Arrow tables with
`submit`, which returns a future; the future resolves only after the
transaction holding those rows has committed, so an export is acknowledged
only once its data is durable. Everything that arrived while the previous
commit ran goes into the next transaction together (group commit), which keeps
commits few and large under load.

Redeliveries are dropped at insert (otel_threads.writer_insert), by a lookup that
stays cheap however large the tables grow.

Memory is bounded: `submit` raises `Overloaded` when the rows waiting for a
commit would exceed ``max_pending_rows``; receivers answer that with
UNAVAILABLE / HTTP 503 and exporters retry later.

Linked turns (otel_threads.writer_forks): the links are recorded with the spans,
and with ``on_fork="reject"`` the spans of forking turns are refused; the future's
`Written` counts them and says why.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from otel_threads.derive import Deriver
from otel_threads.derive_worker import DeriveWorker
from otel_threads.store import connect
from otel_threads.writer_forks import FORK_POLICIES, ForkGate
from otel_threads.writer_insert import insert_batch
from otel_threads.writer_stats import KINDS, LATENCY_BUCKETS, WriterStats

__all__ = ["FORK_POLICIES", "LATENCY_BUCKETS", "Overloaded", "StoreClosed", "Writer", "WriterStats",
           "Written"]

_logger = logging.getLogger(__name__)



#: WAL size at which DuckDB checkpoints during a commit; below it, the writer
#: checkpoints only when idle.
WAL_CHECKPOINT_THRESHOLD = "256MB"

class StoreClosed(RuntimeError):
    """The store is closed, or closing: no more reads."""


class Overloaded(RuntimeError):
    """Too many rows are waiting for a commit; retry later."""

    def __init__(self, pending: int, limit: int, retry_after_s: float) -> None:
        super().__init__(
            f"the writer has {pending} rows waiting for a commit (limit {limit}); "
            f"retry in {retry_after_s:g}s"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Written:
    """What became of one submitted table once its transaction committed."""

    rows: int  #: rows submitted
    rejected: int = 0  #: rows refused (spans of a forking turn, with on_fork="reject")
    error: str | None = None  #: why, when rows were refused


class _Item:
    __slots__ = ("error", "future", "kind", "rejected", "rows", "table")

    def __init__(self, kind: str, table: pa.Table) -> None:
        self.kind = kind
        self.table = table
        self.rows = table.num_rows
        self.rejected = 0
        self.error: str | None = None
        self.future: Future[Written] = Future()


class Writer:
    """Owns one DuckDB connection on its own thread; see the module docstring.

    ``max_pending_rows`` bounds the rows accepted but not yet committed;
    ``max_commit_rows`` bounds one transaction; after ``idle_checkpoint_s``
    without work the WAL is checkpointed into the file. The derived tables
    (otel_threads.derive) follow on their own thread, yielding to ingest for at
    most ``derive_max_lag_s``; `sync` waits for commits and derivation.
    ``on_fork`` is "allow" (forks are stored, and shown as forks) or "reject".
    `close` drains what was accepted, then closes the file; it is idempotent and
    safe before `start`.
    """

    def __init__(
        self,
        path: str,
        *,
        max_pending_rows: int = 262_144,
        max_commit_rows: int = 131_072,
        retry_after_s: float = 1.0,
        idle_checkpoint_s: float = 1.0,
        derive_max_lag_s: float = 5.0,
        on_fork: str = "allow",
        connection_factory: Callable[[str], duckdb.DuckDBPyConnection] = connect,
    ) -> None:
        if max_pending_rows < 1 or max_commit_rows < 1:
            raise ValueError("max_pending_rows and max_commit_rows must be at least 1")
        if on_fork not in FORK_POLICIES:
            raise ValueError(f"on_fork must be one of {FORK_POLICIES}, got {on_fork!r}")
        self.on_fork = on_fork
        self._forks: ForkGate | None = None  # with on_fork="reject", once started
        self.path = path
        self.max_pending_rows = max_pending_rows
        self.max_commit_rows = max_commit_rows
        self.retry_after_s = retry_after_s
        self.stats = WriterStats()
        self._connection_factory = connection_factory
        self._con: duckdb.DuckDBPyConnection | None = None
        self._queue: list[_Item] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._dirty = False
        self.idle_checkpoint_s = idle_checkpoint_s
        self.derive_max_lag_s = derive_max_lag_s
        self._derive: DeriveWorker | None = None
        self._readers: set[duckdb.DuckDBPyConnection] = set()
        self._readers_lock = threading.Condition()
        self._readers_closed = False
        self._last_commit = 0.0
        self.quiet_s = 0.2

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Writer:
        """Open (and migrate) the file and start the writer thread."""
        if self._thread is not None:
            return self
        self._con = self._connection_factory(self.path)
        # Checkpoints (folding the WAL into the file) run inside a commit and
        # cost more than the commit: let the WAL grow under load and
        # checkpoint when idle instead (see _take). Durability is the WAL's.
        self._con.execute(f"SET checkpoint_threshold = '{WAL_CHECKPOINT_THRESHOLD}'")
        if self.on_fork == "reject":
            self._forks = ForkGate(self._con)
        if Deriver(self._con).enabled():
            self._derive = DeriveWorker(self._con.cursor(), self.busy, self.derive_max_lag_s)
        self._seq = max(
            self._con.execute(
                "SELECT coalesce(max(ingest_seq), 0) FROM spans_raw UNION ALL "
                "SELECT coalesce(max(ingest_seq), 0) FROM logs"
            ).fetchall()
        )[0]
        self._thread = threading.Thread(target=self._run, name="otel-threads-writer", daemon=True)
        self._thread.start()
        return self

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A new connection to the same database, for readers in this process, for the
        length of a ``with`` block. `close` interrupts the reads still running, so a
        read never keeps the store from closing."""
        with self._readers_lock:
            if self._con is None or self._readers_closed:
                raise StoreClosed("the store is closed" if self._con is None
                                  else "the store is closing")
            cur = self._con.cursor()
            self._readers.add(cur)
        try:
            yield cur
        finally:
            with self._readers_lock:
                self._readers.discard(cur)
                self._readers_lock.notify_all()
            cur.close()

    def _close_readers(self, timeout: float) -> None:
        """Refuse new reads, interrupt those running, wait (up to ``timeout``) for them."""
        with self._readers_lock:
            self._readers_closed = True
            for cur in self._readers:
                cur.interrupt()
            if not self._readers_lock.wait_for(lambda: not self._readers, timeout):
                _logger.warning("%d reads did not stop when interrupted; closing anyway",
                                len(self._readers))

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything accepted so far, then close the file. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _logger.error("writer did not drain within %ss; closing anyway", timeout)
        if self._derive is not None:
            self._derive.close()
            self._derive = None
        if self._con is not None:
            self._close_readers(timeout=5.0)
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error:
                _logger.warning("checkpoint at close failed", exc_info=True)
            self._con.close()
            self._con = None

    # -- producers -----------------------------------------------------------------

    def submit(self, kind: str, table: pa.Table) -> Future[Written]:
        """Queue rows for the next commit; the future resolves to `Written` after it.

        Raises `Overloaded` when the queue is full and RuntimeError once closing.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        item = _Item(kind, table)
        with self._cond:
            if self._closing or self._thread is None:
                raise RuntimeError("the writer is not accepting data (not started or closing)")
            pending = self.stats.pending_rows
            if pending and pending + item.rows > self.max_pending_rows:
                self.stats.overloaded += 1
                raise Overloaded(pending, self.max_pending_rows, self.retry_after_s)
            self.stats.pending_rows += item.rows
            self.stats.received[kind] += item.rows
            self._queue.append(item)
            self._cond.notify()
        return item.future

    def write(self, kind: str, table: pa.Table, timeout: float | None = None) -> Written:
        """`submit` and wait for the commit."""
        return self.submit(kind, table).result(timeout)

    # -- the writer thread ---------------------------------------------------------------

    def _take(self, wait_s: float) -> list[_Item] | None:
        """The next group to commit; [] after an idle wait; None once closed and drained."""
        with self._cond:
            if not self._queue and not self._closing and wait_s > 0:
                self._cond.wait(wait_s)
            if not self._queue:
                return None if self._closing else []
            taken, rows = [], 0
            while self._queue and (not taken or rows + self._queue[0].rows <= self.max_commit_rows):
                item = self._queue.pop(0)
                taken.append(item)
                rows += item.rows
            return taken

    def _run(self) -> None:
        while True:
            items = self._take(self.idle_checkpoint_s)
            if items is None:
                return  # closing and drained
            if not items:
                if self._dirty:
                    self._checkpoint()  # idle: fold the WAL into the file
                continue
            for item in self._write(items):
                item.future.set_result(Written(item.rows, item.rejected, item.error))

    def busy(self) -> bool:
        """Rows are waiting for a commit, or the last commit ended under ``quiet_s`` ago
        (exports are arriving): derivation waits for a quiet moment."""
        return (self.stats.pending_rows > 0
                or time.monotonic() - self._last_commit < self.quiet_s)

    def derive_health(self) -> tuple[int, int, int]:
        """(traces set aside now, traces set aside since start, failed refreshes since
        start): how derivation fares (otel_threads.derive; the table derive_errors says
        which traces and why)."""
        with self.cursor() as cur:
            now = int(cur.execute("SELECT count(*) FROM derive_errors").fetchall()[0][0])
        if self._derive is None:
            return now, 0, 0
        return now, self._derive.set_aside_total, self._derive.failures

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed and derived."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: not self._queue and self.stats.pending_rows == 0,
                                       timeout):
                return False
        if self._derive is None:
            return True
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._derive.sync(left)

    def _write(self, items: list[_Item]) -> list[_Item]:
        """Commit ``items``; returns those committed (the others' futures have failed)."""
        committed: list[_Item] = []
        try:
            self._commit(items)
            committed = items
        except Exception as exc:
            if len(items) == 1:
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

    def _checkpoint(self) -> None:
        assert self._con is not None
        try:
            self._con.execute("CHECKPOINT")
            self._dirty = False
        except duckdb.Error:
            _logger.warning("idle checkpoint failed; DuckDB retries at its WAL threshold",
                            exc_info=True)

    def _fail(self, items: list[_Item], exc: Exception) -> None:
        self.stats.failed_batches += 1
        _logger.error("writing a batch failed: %s", exc)
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)

    def _commit(self, items: list[_Item]) -> None:
        con = self._con
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
            self._dirty = True
            self._last_commit = time.monotonic()
            if self._derive is not None:
                self._derive.committed()
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        self.stats.observe_commit(time.perf_counter() - started)
        for kind, group in by_kind.items():
            rows = sum(i.rows - i.rejected for i in group)
            self.stats.written[kind] += inserted[kind]
            self.stats.duplicates[kind] += rows - inserted[kind]

    def _insert(self, con: duckdb.DuckDBPyConnection, kind: str, table: pa.Table,
                received_at_us: int) -> int:
        inserted = insert_batch(con, kind, table, self._seq + 1, received_at_us,
                                queue_derive=self._derive is not None)
        self._seq += table.num_rows
        return inserted
