"""The writer: one thread that group-commits batches into an open `Store`.

Receivers (and the in-process exporters) hand it decoded Arrow tables with
`submit`, which returns a future; the future resolves only after the
transaction holding those rows has committed, so an export is acknowledged
only once its data is durable. Everything that arrived while the previous
commit ran goes into the next transaction together (group commit), which keeps
commits few and large under load.

Redeliveries are dropped at insert (otel_threads.store.insert), by a lookup that
stays cheap however large the tables grow.

Memory is bounded: `submit` raises `Overloaded` when the rows waiting for a
commit would exceed ``max_pending_rows``; receivers answer that with
UNAVAILABLE / HTTP 503 and exporters retry later.

After a while of derivation the writer's thread opens the file again, between commits
(`Store.recycle_if_due`: statements get slower in a DuckDB database open long).

When the store cannot commit durably (the file deleted, read-only or replaced, a disk
that fails, DuckDB's fatal errors), exports are refused, and the writer's thread lets
the store heal (otel_threads.store.healing).

Linked turns (otel_threads.store.forks): the links are recorded with the spans,
and with ``on_fork="reject"`` the spans of forking turns are refused; the future's
`Written` counts them and says why.

The writer's parts: otel_threads.store.committing (one group commit, and what a failed
one was), otel_threads.store.errors (what callers get back). The connection, reads,
derivation and checkpoints are the store's (otel_threads.store.store).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future

import duckdb
import pyarrow as pa

from otel_threads.store.committing import Committing
from otel_threads.store.errors import Overloaded, StoreClosed, StoreUnavailable, Written, _Item
from otel_threads.store.forks import FORK_POLICIES, ForkGate
from otel_threads.store.health import Fault
from otel_threads.store.stats import KINDS, LATENCY_BUCKETS, ThreadCpu, WriterStats
from otel_threads.store.store import Store
from otel_threads.store.trace_numbers import SeenTraces

__all__ = [
    "FORK_POLICIES",
    "LATENCY_BUCKETS",
    "MAX_PENDING_ROWS",
    "Fault",
    "Overloaded",
    "Store",
    "StoreClosed",
    "StoreUnavailable",
    "Writer",
    "WriterStats",
    "Written",
]

_logger = logging.getLogger(__name__)


#: Default of ``max_pending_rows``: rows accepted but not yet committed.
MAX_PENDING_ROWS = 262_144
#: WAL size past which the writer has the store checkpoint after a commit; below it,
#: only when idle. DuckDB's own automatic checkpoint is off: a checkpoint must never
#: run while derivation writes (see `Store.checkpoint_lock`). Under sustained ingest the
#: writer is never idle, so this bounds the WAL, and what DuckDB holds in memory for it:
#: the soak's collector peaked at 969 MiB with 32 MiB (2.8M spans in 2 minutes, 4
#: exporters) and at 1,242 MiB with 256 MiB (bench/soak.py).
WAL_CHECKPOINT_BYTES = 32 << 20


class Writer(Committing):
    """Commits into ``store`` on a thread of its own; see the module docstring.

    ``store`` is a `Store`, or a path: then the writer opens a `Store` of that file
    with its defaults, and closes it when it closes. ``max_pending_rows`` bounds the
    rows accepted but not yet committed; ``max_commit_rows`` bounds one transaction;
    after ``idle_checkpoint_s`` without work the store checkpoints its WAL.
    ``on_fork`` is "allow" (forks are stored, and shown as forks) or "reject".
    `close` drains what was accepted (and closes a store of its own); it is idempotent
    and safe before `start`.
    """

    def __init__(
        self,
        store: Store | str,
        *,
        max_pending_rows: int = MAX_PENDING_ROWS,
        max_commit_rows: int = 131_072,
        retry_after_s: float = 1.0,
        idle_checkpoint_s: float = 1.0,
        on_fork: str = "allow",
    ) -> None:
        if max_pending_rows < 1 or max_commit_rows < 1:
            raise ValueError("max_pending_rows and max_commit_rows must be at least 1")
        if on_fork not in FORK_POLICIES:
            raise ValueError(f"on_fork must be one of {FORK_POLICIES}, got {on_fork!r}")
        self._owns_store = not isinstance(store, Store)
        self.store = Store(store) if isinstance(store, str) else store
        self.on_fork = on_fork
        self._forks: ForkGate | None = None  # with on_fork="reject", once opened
        self.max_pending_rows = max_pending_rows
        self.max_commit_rows = max_commit_rows
        self.retry_after_s = retry_after_s
        self.idle_checkpoint_s = idle_checkpoint_s
        self.stats = WriterStats()
        self._queue: list[_Item] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._seen: SeenTraces | None = None
        self._last_commit = 0.0
        self.quiet_s = 0.2
        self.store.attach(busy=self.busy, drain=self.drain, wake=self._wake, on_open=self._opened)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Writer:
        """Open the store (if it is not open yet) and start the writer thread."""
        if self._thread is not None:
            return self
        self.store.open()
        self._thread = threading.Thread(target=self._run, name="otel-threads-writer", daemon=True)
        self._thread.start()
        return self

    def _opened(self, con: duckdb.DuckDBPyConnection) -> None:
        """What the writer keeps of each connection the store opens: where ingest_seq
        goes on, and the fork gate."""
        self._forks = ForkGate(con) if self.on_fork == "reject" else None
        # the traces numbered in this file (built at the first commit, on the writer's
        # thread: opening must not wait for a scan of every trace id)
        self._seen = None
        self._seq = max(
            con.execute(
                "SELECT coalesce(max(ingest_seq), 0) FROM spans_raw UNION ALL "
                "SELECT coalesce(max(ingest_seq), 0) FROM logs"
            ).fetchall()
        )[0]

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything accepted so far (and close a store of its own). Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _logger.error("writer did not drain within %ss; closing anyway", timeout)
        if self._owns_store:
            self.store.close()

    # -- producers -----------------------------------------------------------------

    def submit(self, kind: str, table: pa.Table) -> Future[Written]:
        """Queue rows for the next commit; the future resolves to `Written` after it.

        Raises `Overloaded` when the queue is full, `StoreUnavailable` while the store
        cannot commit durably (a `Fault`), and RuntimeError once closing.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        item = _Item(kind, table)
        with self._cond:
            if self._closing or self._thread is None:
                raise RuntimeError("the writer is not accepting data (not started or closing)")
            fault = self.store.writes_refused()
            if fault is not None:
                raise StoreUnavailable(fault, self.retry_after_s)
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

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed (or failed)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queue and self.stats.pending_rows == 0, timeout
            )

    def busy(self) -> bool:
        """Rows are waiting for a commit, or the last commit ended under ``quiet_s`` ago
        (exports are arriving): derivation waits for a quiet moment."""
        return self.stats.pending_rows > 0 or time.monotonic() - self._last_commit < self.quiet_s

    # -- the writer thread ---------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

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
        cpu = ThreadCpu()
        try:
            self._loop(cpu)
        finally:
            self.stats.cpu_seconds += cpu.lap()

    def _loop(self, cpu: ThreadCpu) -> None:
        store = self.store
        while True:
            self.stats.cpu_seconds += cpu.lap()  # (the loop's last turn used: for /metrics)
            store.heal_if_due()
            store.recycle_if_due()  # statements get slower in a database open long
            wait = (
                self.idle_checkpoint_s
                if store.fault is None
                else min(self.idle_checkpoint_s, store.heal_interval_s)
            )
            items = self._take(wait)
            if items is None:
                return  # closing and drained
            store.watch(force=bool(items))  # never acknowledge into a file that is gone
            if not items:  # idle: fold the WAL (of commits here and of derivation)
                if store.fault is None and store.needs_checkpoint():
                    store.watch(force=True)  # a read-only file would make it a fatal error
                    if store.fault is None:
                        # a large WAL must not wait for derivation to run out of work
                        store.checkpoint(due=store.wal_bytes() > WAL_CHECKPOINT_BYTES)
                continue
            fault = store.fault
            if fault is not None and fault.kind != "write":
                self._refuse(items, StoreUnavailable(fault, self.retry_after_s))
                continue
            committed = self._write(items)
            if fault is not None and len(committed) == len(items):
                store.commit_retried(fault)
            for item in committed:
                item.future.set_result(Written(item.rows, item.rejected, item.error))
            store.sample_index_memory()  # (the memory limit follows the indexes)
            if store.fault is None and store.wal_bytes() > WAL_CHECKPOINT_BYTES:
                store.checkpoint(due=True)

    def _refuse(self, items: list[_Item], exc: Exception) -> None:
        """Fail ``items`` (never acknowledged: their senders retry)."""
        with self._cond:
            self.stats.pending_rows -= sum(i.rows for i in items)
            self._cond.notify_all()
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)
