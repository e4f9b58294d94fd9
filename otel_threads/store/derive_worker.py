"""`DeriveWorker`: keeping the derived tables current on a thread of their own, behind
the writer (otel_threads.store.derive says what a refresh derives); `DerivePool`: several,
side by side, each deriving a share of the threads (otel_threads.store.claims)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

import duckdb

from otel_threads.store.claims import Contended, Share, SharedLock
from otel_threads.store.derive import Deriver
from otel_threads.store.health import classify
from otel_threads.store.stats import RefreshStats, ThreadCpu

__all__ = ["DERIVE_NICE", "DerivePool", "DeriveWorker"]

#: How long a refresh that another one beside it held up (`Contended`) waits, at most,
#: for a refresh to end before it is tried again.
CONTENDED_WAIT_S = 0.05

#: The CPU priority (nice value) of derivation's threads: the lowest. Ingest comes first:
#: with every core busy (4 exporters at full rate on 2 cores, bench/soak.py) the writer's
#: thread, the one every acknowledgement waits for, waited for a core a third of its time,
#: and a refresh beside it took half a core. At this priority derivation takes the CPU
#: that ingest leaves (all of it on a machine not saturated): 45,852 spans/s acknowledged
#: against 40,880 at the same priority, derivation 6,500-8,500 spans/s behind them
#: against 10,400, and caught up as soon as ingest eased.
DERIVE_NICE = 19

_logger = logging.getLogger("otel_threads.store.derive")


def _lower_priority() -> None:
    """Run the calling thread at `DERIVE_NICE` (Linux sets one thread's priority so;
    elsewhere, or where that is refused, it runs at the process's)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DERIVE_NICE)


class DeriveWorker:
    """Runs `Deriver.refresh` on its own thread and connection, behind the writer.

    Ingest comes first: while the writer is busy (``busy()`` is true) the worker
    waits, unless the oldest commit it has not derived is ``max_lag_s`` old; so
    acknowledgements never wait for derivation, and under a sustained load that
    derivation follows the derived views lag by about ``max_lag_s`` and a refresh at
    most (a commit counts from when it came, also during a refresh). `sync` waits
    until every commit reported so far is derived. ``busy_s`` is the time its
    refreshes took.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        busy: Callable[[], bool],
        max_lag_s: float = 1.0,
        lock: SharedLock | None = None,
        yield_to: Callable[[], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        memory_short: Callable[[], bool] | None = None,
        stats: RefreshStats | None = None,
        share: Share | None = None,
    ) -> None:
        self._deriver = Deriver(con, share)
        self._deriver.memory_short = memory_short
        self._claims = None if share is None else share.claims
        self._con = con
        self._busy = busy
        self.max_lag_s = max_lag_s
        #: held (shared with the workers beside it) for each refresh: the writer
        #: checkpoints only while it is free
        self._lock = lock or SharedLock()
        #: called before each refresh: waits while a checkpoint is due (see
        #: `Store.yield_to_checkpoint`), so back-to-back refreshes never starve it
        self._yield_to = yield_to
        self._on_error = on_error
        #: the refreshes that derived traces
        self.stats = stats if stats is not None else RefreshStats()
        self.failures = 0
        #: seconds spent in refreshes (the waits for checkpoints not counted)
        self.busy_s = 0.0
        self._cond = threading.Condition()
        self._reported = 0  # commits the writer has reported
        self._derived = 0  # commits whose traces are derived
        self._oldest = 0.0  # monotonic time of the oldest commit not derived
        self._target = 0  # the commits the refreshes under way (or last) derive up to
        self._after = 0.0  # monotonic time of the first commit reported after _target
        self._closing = False
        self._stopping = False  # `stop`: no refresh after the one under way
        if self._deriver.pending():  # left over by a process that stopped (or was killed)
            self._reported, self._oldest = 1, time.monotonic()
        self._thread = threading.Thread(target=self._run, name="otel-threads-derive", daemon=True)
        self._thread.start()

    @property
    def set_aside_total(self) -> int:
        """Traces set aside since this worker started (`Deriver.set_aside`)."""
        return self._deriver.set_aside_total

    def committed(self) -> None:
        """The writer committed a batch whose traces are in ``derive_queue``."""
        with self._cond:
            now = time.monotonic()
            if self._derived == self._reported:
                self._oldest = now
            if self._reported == self._target:  # (the first one a refresh under way missed)
                self._after = now
            self._reported += 1
            self._cond.notify_all()

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every commit reported so far is derived; False if not within
        ``timeout``, or if the worker was stopped first (`close` with ``drain=False``)."""
        with self._cond:
            target = self._reported
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: self._derived >= target or self._closing or self._stopping, timeout
            )
            return self._derived >= target or (self._closing and not self._stopping)

    def stop(self) -> None:
        """Start no refresh after the one under way (what is left stays queued for the
        next worker); `close` then waits for it."""
        with self._cond:
            self._closing = self._stopping = True
            self._cond.notify_all()

    def close(self, drain: bool = True, timeout: float | None = None) -> bool:
        """Derive what is left (or, without ``drain``, just finish the refresh under way:
        `stop`), then stop; past ``timeout`` seconds, stop after the refresh under way
        (what is left stays queued for the next worker). Whether it was all derived.
        Idempotent."""
        self.begin_close(drain)
        self.join(timeout)
        return self.end_close()

    def begin_close(self, drain: bool = True) -> None:
        """The first half of `close`: the worker goes on to its end without waiting."""
        if not drain:
            self.stop()
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` for the worker to end (after `begin_close`)."""
        self._thread.join(timeout)

    def end_close(self) -> bool:
        """The second half of `close`: stop the worker after its refresh under way, if it
        is still working; close its connection. Whether it derived every commit."""
        if self._thread.is_alive():
            self.stop()
            self._thread.join()
        self._con.close()
        with self._cond:
            return self._derived >= self._reported

    def _due(self) -> bool:
        if self._stopping or self._derived >= self._reported:
            return False
        if self._closing or not self._busy():
            return True
        return time.monotonic() - self._oldest >= self.max_lag_s

    def _refresh(self) -> int:
        if self._yield_to is not None:
            self._yield_to()
        if self._stopping:
            return 0
        contended = False
        with self._lock.shared():
            started = time.perf_counter()
            try:
                n = self._deriver.refresh()
            except Contended:  # a refresh beside it holds some of its threads
                n, contended = 0, True
        took = time.perf_counter() - started
        self.busy_s += took
        if n:
            self.stats.observe(took, n)
        if contended and self._claims is not None:
            self._claims.wait(CONTENDED_WAIT_S)  # (then again: its traces are still queued)
            return 1
        return n

    def _run(self) -> None:
        _lower_priority()
        cpu = ThreadCpu()
        try:
            self._loop(cpu)
        finally:
            self.stats.add_cpu(cpu.lap())

    def _loop(self, cpu: ThreadCpu) -> None:
        while True:
            self.stats.add_cpu(cpu.lap())  # (the loop's last turn used: for /metrics)
            with self._cond:
                while not self._due():
                    if self._closing or self._stopping:
                        return
                    self._cond.wait(0.05 if self._derived < self._reported else None)
                target = self._target = self._reported
            try:
                while not self._stopping and self._refresh():
                    self.stats.add_cpu(cpu.lap())
            except Exception as exc:
                self.failures += 1
                if self._on_error is not None:
                    self._on_error(exc)
                log = _logger.error if self.failures == 1 else _logger.debug
                log(
                    "deriving threads failed on an error of the store (%s); the data is "
                    "stored, the derived views lag until the next try (further failures are "
                    "counted)",
                    " ".join(str(exc).split())[:300],
                    exc_info=classify(exc) is None,
                )  # a bug of ours: the traceback too
            with self._cond:
                if self._stopping:  # not worked off: the queue keeps it
                    self._cond.notify_all()
                    return
                self._derived = target
                if self._derived < self._reported:  # (those that came in meanwhile)
                    self._oldest = self._after
                self._cond.notify_all()


class DerivePool:
    """Several `DeriveWorker` s, the i-th of n deriving the queued traces of the i-th
    share of the threads, with what keeps their refreshes apart (`Claims`); used as one
    worker is."""

    def __init__(self, workers: list[DeriveWorker]) -> None:
        self.workers = workers

    @property
    def stats(self) -> RefreshStats:
        return self.workers[0].stats  # (one for all)

    @property
    def busy_s(self) -> float:
        """Seconds spent in refreshes, of all the workers."""
        return sum(w.busy_s for w in self.workers)

    @property
    def failures(self) -> int:
        return sum(w.failures for w in self.workers)

    @property
    def set_aside_total(self) -> int:
        return sum(w.set_aside_total for w in self.workers)

    def committed(self) -> None:
        for worker in self.workers:
            worker.committed()

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every worker has derived every commit reported so far
        (`DeriveWorker.sync`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not worker.sync(left):
                return False
        return True

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def close(self, drain: bool = True, timeout: float | None = None) -> bool:
        for worker in self.workers:  # (all of them first: they drain side by side)
            worker.begin_close(drain)
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self.workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.stop()  # (all of them before any is waited for)
        return all([worker.end_close() for worker in self.workers])
