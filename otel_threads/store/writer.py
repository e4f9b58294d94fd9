"""The writer: one thread that owns the DuckDB connection and group-commits batches.

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

When the store cannot commit durably (the file deleted, read-only or replaced, a disk
that fails, DuckDB's fatal errors), exports are refused and the writer heals
(otel_threads.store.health).

Linked turns (otel_threads.store.forks): the links are recorded with the spans,
and with ``on_fork="reject"`` the spans of forking turns are refused; the future's
`Written` counts them and says why.

The writer's parts: otel_threads.store.committing (one group commit, and what a failed
one was), otel_threads.store.healing (faults: noticed, refused through, healed),
otel_threads.store.errors (what callers get back).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import duckdb
import pyarrow as pa

from otel_threads.store import connect
from otel_threads.store.committing import Committing
from otel_threads.store.derive import Deriver
from otel_threads.store.derive_worker import DeriveWorker
from otel_threads.store.errors import Overloaded, StoreClosed, StoreUnavailable, Written, _Item
from otel_threads.store.forks import FORK_POLICIES, ForkGate
from otel_threads.store.healing import Healing
from otel_threads.store.health import Fault, classify, file_identity
from otel_threads.store.stats import KINDS, LATENCY_BUCKETS, WriterStats

__all__ = [
    "FORK_POLICIES",
    "LATENCY_BUCKETS",
    "MAX_PENDING_ROWS",
    "Fault",
    "Overloaded",
    "StoreClosed",
    "StoreUnavailable",
    "Writer",
    "WriterStats",
    "Written",
]

_logger = logging.getLogger(__name__)


#: Default of ``max_pending_rows``: rows accepted but not yet committed.
MAX_PENDING_ROWS = 262_144
#: WAL size past which the writer checkpoints after a commit; below it, it checkpoints
#: only when idle. DuckDB's own automatic checkpoint is off: a checkpoint must never run
#: while derivation writes (see `Writer.checkpoint_lock`).
WAL_CHECKPOINT_BYTES = 256 << 20
#: What opening an existing file can raise that may go away (a truncated or unreadable
#: file, one made read-only): the writer starts anyway and keeps trying.
_OPEN_FAULTS = (
    duckdb.IOException,
    duckdb.FatalException,
    duckdb.InternalException,
    duckdb.SerializationException,
    PermissionError,
)


class Writer(Healing, Committing):
    """Owns one DuckDB connection on its own thread; see the module docstring.

    ``max_pending_rows`` bounds the rows accepted but not yet committed;
    ``max_commit_rows`` bounds one transaction; after ``idle_checkpoint_s``
    without work the WAL is checkpointed into the file. The derived tables
    (otel_threads.store.derive) follow on their own thread, yielding to ingest for at
    most ``derive_max_lag_s``; `sync` waits for commits and derivation.
    ``on_fork`` is "allow" (forks are stored, and shown as forks) or "reject".
    `close` drains what was accepted, then closes the file; it is idempotent and
    safe before `start`.
    """

    def __init__(
        self,
        path: str,
        *,
        max_pending_rows: int = MAX_PENDING_ROWS,
        max_commit_rows: int = 131_072,
        retry_after_s: float = 1.0,
        idle_checkpoint_s: float = 1.0,
        derive_max_lag_s: float = 5.0,
        on_fork: str = "allow",
        connection_factory: Callable[[str], duckdb.DuckDBPyConnection] = connect,
        on_open: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
        heal_interval_s: float = 1.0,
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
        self._on_open = on_open
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
        #: Held by whatever writes besides the writer thread (derivation, retention) and
        #: by checkpoints: in DuckDB 2.0.1 a commit that appends to an indexed table and
        #: deletes rows with a NULL key from it while a checkpoint runs beside it fails
        #: ("IndexEntry::RemoveFromIndex - partially deleted from the checkpoint delta")
        #: and invalidates the database (docs/repro/duckdb_checkpoint_delta.py).
        self.checkpoint_lock = threading.Lock()
        #: Why the store cannot commit durably now (otel_threads.store.health), or None.
        self.fault: Fault | None = None
        #: Faults met since start (each one is logged once).
        self.faults = 0
        self.heal_interval_s = heal_interval_s
        self._retry_at = 0.0
        self._backoff_s = 0.0
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._checked_at = 0.0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Writer:
        """Open (and migrate) the file and start the writer thread.

        A file that exists but cannot be opened (unreadable, truncated, read-only) is a
        `Fault`: the writer starts anyway, refuses exports, and opens the file as soon
        as it can. Anything else that keeps it from opening is raised.
        """
        if self._thread is not None:
            return self
        try:
            self._open()
        except Exception as exc:
            if not isinstance(exc, _OPEN_FAULTS) or not os.path.isfile(self.path):
                raise
            self._set_fault(Fault("open", " ".join(str(exc).split())[:300]))
            self._retry_at = time.monotonic() + self.heal_interval_s
        self._thread = threading.Thread(target=self._run, name="otel-threads-writer", daemon=True)
        self._thread.start()
        return self

    def _open(self, checkpoint: bool = False) -> None:
        """Open the file: the connection, derivation, what the writer keeps of it. With
        ``checkpoint``, the file must also take a checkpoint first (after a fatal error:
        the WAL replayed, then written into the file), or this raises."""
        con = self._connection_factory(self.path)
        try:
            if checkpoint:
                con.execute("CHECKPOINT")
            # Checkpoints (folding the WAL into the file) run inside a commit and cost
            # more than the commit: the writer checkpoints itself, when idle or when the
            # WAL passes WAL_CHECKPOINT_BYTES, never while derivation writes.
            con.execute("SET checkpoint_threshold = '1TB'")
            # a long derivation must not draw DuckDB's progress bar on the service's stdout
            con.execute("SET enable_progress_bar = false")
            if self._on_open is not None:
                self._on_open(con)
            forks = ForkGate(con) if self.on_fork == "reject" else None
            seq = max(
                con.execute(
                    "SELECT coalesce(max(ingest_seq), 0) FROM spans_raw UNION ALL "
                    "SELECT coalesce(max(ingest_seq), 0) FROM logs"
                ).fetchall()
            )[0]
            derive = (
                DeriveWorker(
                    con.cursor(),
                    self.busy,
                    self.derive_max_lag_s,
                    lock=self.checkpoint_lock,
                    on_error=self._store_error,
                )
                if Deriver(con).enabled()
                else None
            )
        except BaseException:
            con.close()
            raise
        with self._readers_lock:
            self._con, self._forks, self._seq, self._derive = con, forks, seq, derive
            self._identity = file_identity(self.path)
            self._readers_closed = False
        self._checked_at = time.monotonic()

    def _close_store(self, checkpoint: bool) -> None:
        """Stop derivation and reads, then close the file (checkpointed first if asked)."""
        derive, self._derive = self._derive, None
        if derive is not None:
            derive.close()
        if self._con is None:
            return
        self._close_readers(timeout=5.0)
        with self._readers_lock:
            con, self._con = self._con, None
        if checkpoint:
            try:
                con.execute("CHECKPOINT")
            except duckdb.Error:
                _logger.warning("checkpoint at close failed", exc_info=True)
        with contextlib.suppress(duckdb.Error):
            con.close()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A new connection to the same database, for readers in this process, for the
        length of a ``with`` block. `close` interrupts the reads still running, so a
        read never keeps the store from closing."""
        with self._readers_lock:
            if self._con is None or self._readers_closed:
                fault = self.fault
                if fault is not None and not self._closing:
                    raise StoreUnavailable(fault, self.heal_interval_s)
                raise StoreClosed(
                    "the store is closed" if self._con is None else "the store is closing"
                )
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
                _logger.warning(
                    "%d reads did not stop when interrupted; closing anyway", len(self._readers)
                )

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything accepted so far, then close the file. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _logger.error("writer did not drain within %ss; closing anyway", timeout)
        if self.fault is not None and self.fault.kind == "deleted" and self._con is not None:
            self._write_back()  # the last chance: what it holds is lost otherwise
        self._close_store(checkpoint=self.fault is None)

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
            fault = self.fault
            # after a failed commit ("write"), the next export past the retry time tries
            if fault is not None and (fault.kind != "write" or time.monotonic() < self._retry_at):
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
            if self.fault is not None and time.monotonic() >= self._retry_at:
                self._heal()
            wait = (
                self.idle_checkpoint_s
                if self.fault is None
                else min(self.idle_checkpoint_s, self.heal_interval_s)
            )
            items = self._take(wait)
            if items is None:
                return  # closing and drained
            self._watch(force=bool(items))  # never acknowledge into a file that is gone
            if not items:  # idle: fold the WAL (of commits here and of derivation)
                if self.fault is None and (self._dirty or _wal_bytes(self.path) > 0):
                    self._watch(force=True)  # a read-only file would make it a fatal error
                    if self.fault is None:
                        self._checkpoint()
                continue
            fault = self.fault
            if fault is not None and fault.kind != "write":
                self._refuse(items, StoreUnavailable(fault, self.retry_after_s))
                continue
            committed = self._write(items)
            if fault is not None and self.fault is fault and len(committed) == len(items):
                self._clear_fault()  # the retried commit went through
            for item in committed:
                item.future.set_result(Written(item.rows, item.rejected, item.error))
            if self.fault is None and _wal_bytes(self.path) > WAL_CHECKPOINT_BYTES:
                self._checkpoint()

    def _refuse(self, items: list[_Item], exc: Exception) -> None:
        """Fail ``items`` (never acknowledged: their senders retry)."""
        with self._cond:
            self.stats.pending_rows -= sum(i.rows for i in items)
            self._cond.notify_all()
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)

    def busy(self) -> bool:
        """Rows are waiting for a commit, or the last commit ended under ``quiet_s`` ago
        (exports are arriving): derivation waits for a quiet moment."""
        return self.stats.pending_rows > 0 or time.monotonic() - self._last_commit < self.quiet_s

    def derive_health(self) -> tuple[int, int, int, int]:
        """(traces waiting to be derived, traces set aside now, traces set aside since
        start, failed refreshes since start): how derivation fares (otel_threads.store.derive;
        the table derive_errors says which traces and why)."""
        try:
            with self.cursor() as cur:
                queued, now = cur.execute(
                    "SELECT (SELECT count(*) FROM derive_queue), "
                    "(SELECT count(*) FROM derive_errors)"
                ).fetchall()[0]
        except StoreClosed:  # being opened again
            queued, now = 0, 0
        if self._derive is None:
            return int(queued), int(now), 0, 0
        return int(queued), int(now), self._derive.set_aside_total, self._derive.failures

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed and derived."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(
                lambda: not self._queue and self.stats.pending_rows == 0, timeout
            ):
                return False
        if self._derive is None:
            return True
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._derive.sync(left)

    def _checkpoint(self) -> None:
        """Fold the WAL into the file, unless derivation (or retention) is writing now:
        then it stays dirty, for the next try."""
        assert self._con is not None
        if not self.checkpoint_lock.acquire(blocking=False):
            return
        try:
            self._con.execute("CHECKPOINT")
            self._dirty = False
        except duckdb.Error as exc:
            fault = classify(exc)
            if fault is not None and fault.kind == "fatal":
                self._set_fault(fault)
            else:
                _logger.warning("checkpoint failed; retried when next idle", exc_info=True)
        finally:
            self.checkpoint_lock.release()


def _wal_bytes(path: str) -> int:
    try:
        return os.path.getsize(f"{path}.wal")
    except OSError:
        return 0
