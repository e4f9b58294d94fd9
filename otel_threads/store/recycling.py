"""`Recycling`: the store opened again while it runs, after a while of derivation
(under glibc's malloc every statement of a process that has derived long gets slower;
docs/storage.md, "Memory allocator" and "Opened again").

A mixin of `otel_threads.store.store.Store`. `recycle_if_due` runs on the writer's
thread; it reads and sets the store's ``recycle_after_s``, ``_derive``, ``_con``,
``fault``, ``_closed``, ``_recycle_at``, ``_recycle_due``, ``_checkpoint_cond``,
``checkpoint_lock``, ``_readers``, ``_readers_lock``, ``_recycling``, ``_reads_held``,
``recycle_seconds``, ``_retry_at`` and ``heal_interval_s``, and calls its
``_stop_derivation``, ``checkpoint``, ``_derivation``, ``_store_error``,
``_set_fault``, ``_close`` and ``_open``.
"""

from __future__ import annotations

import logging
import time

import duckdb

from otel_threads.store.health import Fault

__all__ = [
    "RECYCLE_AFTER_S",
    "RECYCLE_CHECKPOINT_TRIES",
    "RECYCLE_READS_WAIT_S",
    "RECYCLE_READ_WAIT_S",
    "RECYCLE_RETRY_S",
    "Recycling",
]

_logger = logging.getLogger("otel_threads.store.writer")

#: Seconds of derivation's refreshes after which the writer opens the file again
#: (`Store.recycle_if_due`). Under glibc's malloc every statement of a database opened
#: long ago costs more than on the same file freshly opened, binding and planning included:
#: refreshes of 1,024 traces took 0.49 s on opening and 0.79 s 100 refreshes later,
#: 0.50-0.61 s with the file opened again every 20 (bench/reopen.py; a new cursor, a
#: checkpoint, a smaller buffer pool or DuckDB's allocator settings did not help); closing and
#: opening it take ~80 ms, after a checkpoint (docs/storage.md, "Opened again"). On
#: mimalloc (otel_threads.collector.allocator) the refreshes drift far less, but they
#: still do in a collector, and its memory grows: bench/soak.py at 5,000 spans/s, 4
#: minutes, refreshes 0.36 -> 0.55 s and RSS 496 -> 842 MiB opened again after 600 s,
#: 0.38 -> 0.46 s and a 635 MiB peak after 30 s.
RECYCLE_AFTER_S = 30.0
#: How long a reopen waits for the reads under way to end (new reads wait for it);
#: past this it is put off for RECYCLE_RETRY_S, and the reads go on.
RECYCLE_READS_WAIT_S = 2.0
RECYCLE_RETRY_S = 10.0
#: Tries (50 ms apart) of the checkpoint before the reads are held: DuckDB refuses one
#: while a transaction holds its checkpoint lock, which the reads that end after the
#: last commits do as they clean up after them.
RECYCLE_CHECKPOINT_TRIES = 10
#: How long a read waits for the store to be opened again.
RECYCLE_READ_WAIT_S = 30.0


class Recycling:
    """Opening the store again: when it is due, and how (see the module docstring)."""

    def recycle_if_due(self) -> bool:
        """Open the file again, when derivation has refreshed for ``recycle_after_s``
        seconds since it was opened (`RECYCLE_AFTER_S` says why), or the memory budget
        raised DuckDB's limit (`Store.sample_index_memory`); whether it did. Run by
        the writer's thread between commits, so nothing commits meanwhile. No refresh
        starts after the one under way (as for a due checkpoint); while one is under
        way it returns, so commits do not wait for it. Then derivation stops (its queue
        is kept) and the file is checkpointed, with reads going on; then the reads under
        way end (new ones wait), and the file is closed and opened again, derivation
        going on from its queue. If the reads do not end within `RECYCLE_READS_WAIT_S`,
        derivation goes on on the same connection and the reopen is tried again
        `RECYCLE_RETRY_S` later."""
        derive, con = self._derive, self._con
        derived_long = not (
            self.recycle_after_s is None or derive is None or derive.busy_s < self.recycle_after_s
        )
        due = (derived_long or self._reopen_wanted) and not (
            con is None
            or self._fault_stops_reopen()
            or self._closed
            or time.monotonic() < self._recycle_at
        )
        with self._checkpoint_cond:  # due: no refresh starts until the reopen
            if self._recycle_due != due:
                self._recycle_due = due
                self._checkpoint_cond.notify_all()
        if not due or con is None:
            return False
        if not self.checkpoint_lock.acquire(blocking=False):
            return False  # a refresh under way: the next call finds it ended
        self.checkpoint_lock.release()
        with self._readers_lock:
            self._recycling = True
        try:
            return self._recycle(con)
        finally:
            with self._readers_lock:
                self._recycling = self._reads_held = False
                self._readers_lock.notify_all()

    def _fault_stops_reopen(self) -> bool:
        """Whether the store's fault puts off opening the file again: any but commits
        failing out of memory (kind "write") for which the budget raised the limit, which
        the file opened again takes."""
        fault = self.fault
        return fault is not None and not (fault.kind == "write" and self._reopen_wanted)

    def _recycle(self, con: duckdb.DuckDBPyConnection) -> bool:
        started = time.perf_counter()
        busy_s = self._derive.busy_s if self._derive is not None else 0.0
        self._stop_derivation(drain=False)
        # (with reads going on; if retention holds the lock, the close checkpoints)
        checkpointed = False
        for _ in range(RECYCLE_CHECKPOINT_TRIES):
            checkpointed = self.checkpoint(quiet=True)
            if checkpointed or self._fault_stops_reopen():
                break
            time.sleep(0.05)
        if self._fault_stops_reopen():  # a fatal error: healing opens the file again
            return False
        held = time.perf_counter()
        with self._readers_lock:
            self._reads_held = True
            ended = self._readers_lock.wait_for(lambda: not self._readers, RECYCLE_READS_WAIT_S)
            if not ended:
                self._reads_held = False
                self._readers_lock.notify_all()
                _logger.debug("opening the store again put off: %d reads", len(self._readers))
        if not ended:
            self._recycle_at = time.monotonic() + RECYCLE_RETRY_S
            try:
                self._derive = self._derivation(con)
            except duckdb.Error as exc:  # healing opens the file again, and derivation
                self._store_error(exc)
                if self.fault is None:
                    self._set_fault(Fault("open", " ".join(str(exc).split())[:300]))
            return False
        drained = time.perf_counter()
        # nothing was written since that checkpoint: the close takes one only if it failed
        # (then with the reads held: 0.15-0.35 s measured)
        self._close(checkpoint=not checkpointed)
        try:
            self._open()
        except Exception as exc:  # the heal path opens it (a fault of kind "open")
            self._set_fault(Fault("open", " ".join(str(exc).split())[:300]))
            self._retry_at = time.monotonic() + self.heal_interval_s
            return False
        done = time.perf_counter()
        self.recycle_seconds.observe(done - started)
        _logger.debug(
            "opened the store again after %.0fs of derivation, in %.2fs (reads held %.2fs, "
            "%.2fs of it for the reads under way)",
            busy_s,
            done - started,
            done - held,
            drained - held,
        )
        return True
