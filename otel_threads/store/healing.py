"""`Healing`: how the store notices that it cannot commit durably, refuses exports
meanwhile, and recovers by itself (otel_threads.store.health says what each fault is
and how it is found).

A mixin of `otel_threads.store.store.Store`. `watch`, `heal_if_due` and
`commit_failed` run on the writer's thread; it reads and sets the store's ``fault``,
``faults``, ``path``, ``_con``, ``_identity``, ``_fault_lock``, ``_checked_at``,
``_retry_at``, ``_backoff_s``, ``heal_interval_s``, ``checkpoint_lock`` and
``memory_budget``, and calls its ``_open``, ``_close``, ``_wake`` and ``memory_short``.
"""

from __future__ import annotations

import logging
import time

import duckdb

from otel_threads.store.health import Fault, check_file, classify, write_back
from otel_threads.store.memory_budget import out_of_memory

__all__ = ["WATCH_S", "Healing"]

_logger = logging.getLogger("otel_threads.store.writer")

#: Seconds between checks that the file is still the one opened, and writable.
WATCH_S = 0.5


class Healing:
    """Faults of the store: set, cleared, watched for, healed."""

    def _set_fault(self, fault: Fault) -> None:
        with self._fault_lock:
            previous, self.fault = self.fault, fault
        self._wake()
        if previous is None or previous.kind != fault.kind:
            self.faults += 1
            _logger.error("%s", fault.line(self.path))
            budget = self.memory_budget
            if budget is not None and fault.kind == "fatal" and out_of_memory(fault.detail):
                budget.out_of_memory()  # (the file opened again to heal takes it)

    def writes_refused(self) -> Fault | None:
        """The fault that refuses an export now, or None: after a failed commit
        ("write"), the next export past the retry time is let through to try."""
        fault = self.fault
        if fault is not None and (fault.kind != "write" or time.monotonic() < self._retry_at):
            return fault
        return None

    def commit_failed(self, fault: Fault) -> None:
        """A commit failed for a fault of the store: refuse, and try again later. Out of
        memory, the budget raises the limit as for a fatal error (a commit's rows are
        bounded: the indexes and the buffer took the rest), and the file is opened again
        to take it (`recycle_if_due`)."""
        self._set_fault(fault)
        self._retry_at = time.monotonic() + self.heal_interval_s
        if fault.kind == "write" and out_of_memory(fault.detail):  # (fatal: `_set_fault`)
            self.memory_short()

    def commit_retried(self, fault: Fault) -> None:
        """A commit went through while ``fault`` (a failed commit) was the fault."""
        if self.fault is fault:
            self._clear_fault()

    def _clear_fault(self, how: str = "") -> None:
        with self._fault_lock:
            previous, self.fault = self.fault, None
        if previous is not None:
            _logger.warning(
                "the store %s commits again%s: exports resume",
                self.path,
                f" ({how})" if how else "",
            )

    def _store_error(self, exc: BaseException) -> None:
        """Derivation met an error of the store: a fatal one stops ingest too, until the
        writer has opened the file again."""
        fault = classify(exc)
        if fault is not None and fault.kind == "fatal":
            self._set_fault(fault)

    def watch(self, force: bool = False) -> None:
        """Check (every WATCH_S, or now if ``force``) that the open file is still at its
        path and writable; start or end a fault accordingly."""
        if self._identity is None or self._con is None:
            return  # an in-memory store, or not open
        now = time.monotonic()
        if not force and now - self._checked_at < WATCH_S:
            return
        self._checked_at = now
        found = check_file(self.path, self._identity)
        current = self.fault
        if found is not None:
            if current is None or (
                current.kind in ("read-only", "replaced", "write") and current.kind != found.kind
            ):
                self._set_fault(found)
                self._retry_at = now  # a deleted file is written back at once
        elif current is not None and current.kind in ("read-only", "replaced"):
            self._clear_fault()

    def heal_if_due(self) -> None:
        """One try at recovering from the fault, when one is due (the next one after
        heal_interval_s)."""
        fault = self.fault
        if fault is None or time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + self.heal_interval_s
        if fault.kind == "deleted":
            if self._write_back():
                self._reopen("written back")
        elif fault.kind in ("fatal", "open"):
            self._reopen("opened again")
        else:  # read-only, replaced: they end when the file is back as it was
            self.watch(force=True)

    def _reopen(self, how: str) -> None:
        """Close and open the file; if it cannot take a checkpoint yet (the disk is still
        full), try again later, waiting longer each time (up to 30 s)."""
        self._close(checkpoint=False)
        try:
            self._open(checkpoint=True)
        except Exception as exc:
            _logger.debug("opening %s again failed: %s", self.path, exc)
            self._backoff_s = min(30.0, max(self.heal_interval_s, 2 * self._backoff_s))
            self._retry_at = time.monotonic() + self._backoff_s
            return
        self._backoff_s = 0.0
        self._clear_fault(how)

    def _write_back(self) -> bool:
        """Write the deleted file back from the copy still open; False if not (yet)."""
        con = self._con
        if con is None:
            return False
        try:
            with self.checkpoint_lock:  # nothing else writes meanwhile
                con.execute("CHECKPOINT")
                size = write_back(self.path)
        except (duckdb.Error, OSError) as exc:
            _logger.debug("writing %s back failed: %s", self.path, exc)
            if isinstance(exc, FileExistsError):
                self._set_fault(Fault("replaced"))
            return False
        _logger.warning(
            "wrote the store back to %s (%.1f MiB) from the copy the collector held open",
            self.path,
            size / (1 << 20),
        )
        return True
