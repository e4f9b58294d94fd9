"""`Store`: one DuckDB file and everything about it but the writing: the connection
(opened, migrated and given its views by `otel_threads.store.schema.connect`), the
cursors of readers, derivation (scheduled by otel_threads.store.deriving, run by
otel_threads.store.derive_worker), checkpoints, the store's health (faults, and
healing from them: otel_threads.store.healing), opening it again while it runs
(otel_threads.store.recycling), and what its indexes hold in memory
(otel_threads.store.index_memory).

The `Writer` (otel_threads.store.writer) writes into an open store; readers take
`cursor` (or the narrower `otel_threads.store.reads.Reads`). A store is used by one
writer: it tells the store when it is busy, how to wait for what it accepted, and what
it needs to know of each connection opened (`attach`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

import duckdb

from otel_threads.store.checkpointing import VACUUM_EVERY_S, Checkpointing, checkpoint_settings
from otel_threads.store.claims import SharedLock
from otel_threads.store.derive_worker import DerivePool, DeriveWorker
from otel_threads.store.deriving import Deriving
from otel_threads.store.errors import StoreClosed, StoreUnavailable
from otel_threads.store.healing import Healing
from otel_threads.store.health import Fault, file_identity
from otel_threads.store.index_memory import IndexMemory
from otel_threads.store.memory_budget import MemoryBudget
from otel_threads.store.recycling import RECYCLE_AFTER_S, RECYCLE_READ_WAIT_S, Recycling
from otel_threads.store.schema import connect
from otel_threads.store.stats import Histogram, RefreshStats

__all__ = ["Store"]

_logger = logging.getLogger("otel_threads.store.writer")

#: How often a closing store interrupts the reads still running again (`_close_readers`).
READER_INTERRUPT_EVERY_S = 0.1

#: What opening an existing file can raise that may go away (a truncated or unreadable
#: file, one made read-only): the store opens anyway, with a fault, and keeps trying.
_OPEN_FAULTS = (
    duckdb.IOException,
    duckdb.FatalException,
    duckdb.InternalException,
    duckdb.SerializationException,
    PermissionError,
)

Hook = Callable[[duckdb.DuckDBPyConnection], None]


def _connect(path: str) -> duckdb.DuckDBPyConnection:
    """`connect`, leaving a rebuild of the derived tables to the store's derivation (which
    works it off behind ingest and reads)."""
    return connect(path, derive_now=False)


class Store(Deriving, Healing, Recycling, Checkpointing, IndexMemory):
    """One DuckDB file; see the module docstring.

    ``connection_factory`` opens it (default `connect`: migrations and views; derived
    tables to rebuild are derived behind ingest);
    ``on_open`` is run on each connection opened (settings of the caller's). Derived
    tables follow the writer's commits on their own thread, yielding to ingest for at
    most ``derive_max_lag_s``. While a `Fault` lasts, healing is tried every
    ``heal_interval_s`` (by the writer's thread: `heal_if_due`). After
    ``recycle_after_s`` seconds of derivation the writer's thread opens the file again
    (`recycle_if_due`; None: never). ``derive_workers`` derive side by side, each a share
    of the threads (otel_threads.store.claims). ``memory_budget`` gives each connection
    opened its memory limit, and learns what the indexes hold
    (otel_threads.store.memory_budget; None: the limit is the caller's).
    """

    def __init__(
        self,
        path: str,
        *,
        connection_factory: Callable[[str], duckdb.DuckDBPyConnection] | None = None,
        on_open: Hook | None = None,
        derive_max_lag_s: float = 1.0,
        heal_interval_s: float = 1.0,
        recycle_after_s: float | None = RECYCLE_AFTER_S,
        derive_workers: int = 1,
        memory_budget: MemoryBudget | None = None,
    ) -> None:
        if derive_workers < 1:
            raise ValueError(f"derive_workers must be 1 or more, got {derive_workers}")
        self.path = path
        self.derive_workers = derive_workers
        self.recycle_after_s = recycle_after_s
        self.derive_max_lag_s = derive_max_lag_s
        self.heal_interval_s = heal_interval_s
        self._connection_factory = connection_factory or _connect
        self.memory_budget = memory_budget
        self._sampled_at = 0.0
        #: the memory budget raised the limit: open the file again (`recycle_if_due`)
        self._reopen_wanted = False
        self._hooks: list[Hook] = [on_open] if on_open is not None else []
        self._busy: Callable[[], bool] = lambda: False
        self._drain: Callable[[float | None], bool] = lambda timeout: True
        self._wake: Callable[[], None] = lambda: None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._derive: DeriveWorker | DerivePool | None = None
        self._readers: set[duckdb.DuckDBPyConnection] = set()
        self._readers_lock = threading.Condition()
        self._readers_closed = False
        #: being opened again (`recycle_if_due`): `sync` waits; and new reads, while
        #: ``_reads_held``
        self._recycling = False
        self._reads_held = False
        self._recycle_at = 0.0  # monotonic time before which no reopen is tried
        #: how long each opening again (`recycle_if_due`) held commits and reads (/metrics)
        self.recycle_seconds = Histogram()
        #: traces set aside and refreshes failed by the derive workers closed before
        self._set_aside_before = 0
        self._failures_before = 0
        self._opened = False
        self._closed = False
        self._dirty = False
        #: Held by whatever writes besides the writer (derivation's refreshes, shared;
        #: retention) and by checkpoints: in DuckDB 2.0.1 a commit that appends to an
        #: indexed table and deletes rows with a NULL key from it while a checkpoint runs
        #: beside it fails
        #: ("IndexEntry::RemoveFromIndex - partially deleted from the checkpoint delta")
        #: and invalidates the database (docs/repro/duckdb_checkpoint_delta.py).
        self.checkpoint_lock = SharedLock()
        #: how long the checkpoints took (/metrics)
        self.checkpoint_seconds = Histogram()
        #: derivation's refreshes (/metrics), kept while the file is opened again
        self.refreshes = RefreshStats()
        #: A checkpoint is due (the WAL is large) but derivation held the lock: no new
        #: refresh starts until it has run (`yield_to_checkpoint`).
        self._checkpoint_due = False
        #: A reopen is due (`recycle_if_due`): likewise, until it has run (a checkpoint
        #: meanwhile does not end this wait).
        self._recycle_due = False
        #: When a checkpoint last vacuumed (otel_threads.store.checkpointing): never yet
        self._vacuumed_at = -VACUUM_EVERY_S
        self._checkpoint_cond = threading.Condition()
        #: Why the store cannot commit durably now (otel_threads.store.health), or None.
        self.fault: Fault | None = None
        #: Faults met since opened (each one is logged once).
        self.faults = 0
        self._fault_lock = threading.Lock()
        self._retry_at = 0.0
        self._backoff_s = 0.0
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._checked_at = 0.0

    # -- what the writer tells the store ----------------------------------------------

    def attach(
        self,
        *,
        busy: Callable[[], bool],
        drain: Callable[[float | None], bool],
        wake: Callable[[], None],
        on_open: Hook,
    ) -> None:
        """The writer of this store: ``busy()`` while exports arrive (derivation waits),
        ``drain(timeout)`` waits for its accepted rows to commit, ``wake()`` when a fault
        starts (its thread refuses and heals), ``on_open`` learns each connection opened
        (before derivation starts on it)."""
        self._busy, self._drain, self._wake = busy, drain, wake
        self._hooks.append(on_open)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def con(self) -> duckdb.DuckDBPyConnection | None:
        """The writer's connection while open (None while closed or faulted shut)."""
        return self._con

    def open(self) -> Store:
        """Open (and migrate) the file and start derivation; idempotent.

        A file that exists but cannot be opened (unreadable, truncated, read-only) is a
        `Fault`: the store stays closed and the writer's thread opens it as soon as it
        can (`heal_if_due`). Anything else that keeps it from opening is raised.
        """
        if self._opened:
            return self
        try:
            self._open()
        except Exception as exc:
            if not isinstance(exc, _OPEN_FAULTS) or not os.path.isfile(self.path):
                raise
            self._set_fault(Fault("open", " ".join(str(exc).split())[:300]))
            self._retry_at = time.monotonic() + self.heal_interval_s
        self._opened = True
        return self

    def _open(self, checkpoint: bool = False) -> None:
        """Open the file: the connection, its settings, derivation. With ``checkpoint``,
        the file must also take a checkpoint first (after a fatal error: the WAL
        replayed, then written into the file), or this raises."""
        con = self._connection_factory(self.path)
        try:
            if checkpoint:
                con.execute("CHECKPOINT")
            checkpoint_settings(con)
            # a long derivation must not draw DuckDB's progress bar on the service's stdout
            con.execute("SET enable_progress_bar = false")
            if self.memory_budget is not None:
                con.execute(f"SET memory_limit = '{self.memory_budget.limit}B'")
            for hook in self._hooks:
                hook(con)
            derive = self._derivation(con)
        except BaseException:
            con.close()
            raise
        with self._readers_lock:
            self._con, self._derive = con, derive
            self._identity = file_identity(self.path)
            self._readers_closed = False
        self._checked_at = time.monotonic()
        self._reopen_wanted = False

    def _close(self, checkpoint: bool, drain_timeout: float | None = None) -> None:
        """Stop reads (interrupted: a long one would slow derivation's last refreshes),
        then derivation (once it has worked off its queue, for up to ``drain_timeout``
        seconds), then close the file (checkpointed first if asked)."""
        if self._con is not None:
            self._close_readers(timeout=5.0)
        self._stop_derivation(drain=True, timeout=drain_timeout)
        if self._con is None:
            return
        with self._readers_lock:
            con, self._con = self._con, None
        if checkpoint:
            try:
                con.execute("CHECKPOINT")
            except duckdb.Error:
                _logger.warning("checkpoint at close failed", exc_info=True)
        with contextlib.suppress(duckdb.Error):
            con.close()

    def close(self, drain_timeout: float | None = None) -> None:
        """Close the file (reads interrupted, derivation finished: its queue worked off
        within ``drain_timeout`` seconds, else left for the next open). Idempotent. Call
        it after the writer has closed: a deleted file is written back here, the last
        chance for what it holds."""
        if self._closed:
            return
        self._closed = True
        if self.fault is not None and self.fault.kind == "deleted" and self._con is not None:
            self._write_back()
        self._close(checkpoint=self.fault is None, drain_timeout=drain_timeout)

    # -- reading -------------------------------------------------------------------

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A new connection to the same database, for readers in this process, for the
        length of a ``with`` block. `close` interrupts the reads still running, so a
        read never keeps the store from closing. While the file is opened again
        (`recycle_if_due`) a new read waits for it."""
        with self._readers_lock:
            self._readers_lock.wait_for(lambda: not self._reads_held, RECYCLE_READ_WAIT_S)
            if self._con is None or self._readers_closed:
                fault = self.fault
                if fault is not None and not self._closed:
                    raise StoreUnavailable(fault, self.heal_interval_s)
                raise StoreClosed(
                    "the store is closed" if self._con is None else "the store is closing"
                )
            cur = self._con.cursor()
            self._readers.add(cur)
        try:
            yield cur
        finally:
            # closed before it leaves the set: a reopen that finds the set empty must
            # find no connection left to the old database (DuckDB would hand that
            # database back to the next open instead of a new one)
            cur.close()
            with self._readers_lock:
                self._readers.discard(cur)
                self._readers_lock.notify_all()

    def _close_readers(self, timeout: float) -> None:
        """Refuse new reads, interrupt those running, wait (up to ``timeout``) for them.
        The interrupts are sent again every `READER_INTERRUPT_EVERY_S`: DuckDB forgets one
        that comes between two statements of a read (each statement starts uninterrupted)."""
        deadline = time.monotonic() + timeout
        with self._readers_lock:
            self._readers_closed = True
            while self._readers:
                for cur in self._readers:
                    with contextlib.suppress(duckdb.Error):  # (one closed as it ends)
                        cur.interrupt()
                left = deadline - time.monotonic()
                if left <= 0:
                    _logger.warning(
                        "%d reads did not stop when interrupted; closing anyway",
                        len(self._readers),
                    )
                    return
                self._readers_lock.wait(min(READER_INTERRUPT_EVERY_S, left))

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until everything the writer accepted so far is committed and derived;
        whether it was, within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        if not self._drain(timeout):
            return False
        while True:
            with self._readers_lock:
                if not self._readers_lock.wait_for(lambda: not self._recycling, left()):
                    return False
                derive = self._derive
            if derive is None or derive.sync(left()):
                return True
            if derive is self._derive or left() == 0.0:
                return False  # not derived in time (else: stopped to open the file again)
