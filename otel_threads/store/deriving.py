"""`Deriving`: the store's derivation: its workers started on the open file, stopped
(their queue worked off, or left for the next open), told of each commit, and how they
fare.

A mixin of `otel_threads.store.store.Store`. It reads and sets the store's ``_derive``,
``derive_workers``, ``derive_max_lag_s``, ``checkpoint_lock``, ``refreshes``,
``_checkpoint_cond``, ``_checkpoint_due``, ``_recycle_due``, ``_dirty``,
``_set_aside_before`` and ``_failures_before``, and calls its ``_busy``,
``yield_to_checkpoint``, ``_store_error``, ``memory_short`` and ``cursor``.
"""

from __future__ import annotations

import logging

import duckdb

from otel_threads.store.claims import Claims, Share
from otel_threads.store.derive import Deriver
from otel_threads.store.derive_worker import DerivePool, DeriveWorker
from otel_threads.store.errors import StoreClosed

__all__ = ["Deriving"]

_logger = logging.getLogger("otel_threads.store.writer")


class Deriving:
    """Derivation of the store's open file, on threads of its own."""

    def _derivation(self, con: duckdb.DuckDBPyConnection) -> DeriveWorker | DerivePool | None:
        """Derivation on connections of its own to ``con``'s database, one a worker (None
        if the file has no derived tables)."""
        if not Deriver(con).enabled():
            return None
        n = self.derive_workers
        claims = Claims() if n > 1 else None  # (one deriver alone claims nothing)
        workers: list[DeriveWorker] = []
        try:
            for i in range(n):
                workers.append(
                    DeriveWorker(
                        con.cursor(),
                        self._busy,
                        self.derive_max_lag_s,
                        lock=self.checkpoint_lock,
                        yield_to=self.yield_to_checkpoint,
                        on_error=self._store_error,
                        memory_short=self.memory_short,
                        stats=self.refreshes,
                        share=None if claims is None else Share(i, n, claims),
                    )
                )
        except BaseException:
            for worker in workers:
                worker.close(drain=False)
            raise
        return workers[0] if n == 1 else DerivePool(workers)

    def _stop_derivation(self, drain: bool, timeout: float | None = None) -> None:
        """Stop derivation: after working its queue off (for up to ``timeout`` seconds),
        or (without ``drain``, or past the timeout) after the refresh under way: what is
        left stays queued for the next open. Nothing checkpoints meanwhile (the writer
        has stopped, or is the caller), so a checkpoint that is due must not hold its
        refreshes (`yield_to_checkpoint`)."""
        derive, self._derive = self._derive, None
        if derive is not None and not drain:
            derive.stop()  # (before the mark goes: no refresh may start after it)
        with self._checkpoint_cond:
            self._checkpoint_due = self._recycle_due = False
            self._checkpoint_cond.notify_all()
        if derive is not None:
            if not derive.close(drain=drain, timeout=timeout) and drain:
                _logger.warning(
                    "derivation stopped before it had worked off its queue (%s): the "
                    "traces left stay queued and are derived when the store is opened next",
                    "stopped" if timeout is None else f"given {timeout:g}s",
                )
            self._set_aside_before += derive.set_aside_total
            self._failures_before += derive.failures

    @property
    def derives(self) -> bool:
        """Whether commits queue their traces for derivation (the derived tables exist)."""
        return self._derive is not None

    def committed(self) -> None:
        """The writer committed a batch: the WAL has something to fold, derivation work."""
        self._dirty = True
        if self._derive is not None:
            self._derive.committed()

    def derive_health(self) -> tuple[int, int, int, int]:
        """(traces waiting to be derived, traces set aside now, traces set aside since
        the store was opened, failed refreshes since then): how derivation fares
        (otel_threads.store.derive; the table derive_errors says which traces and why)."""
        try:
            with self.cursor() as cur:
                queued, now = cur.execute(
                    "SELECT (SELECT count(*) FROM derive_queue), "
                    "(SELECT count(*) FROM derive_errors)"
                ).fetchall()[0]
        except StoreClosed:  # being opened again
            queued, now = 0, 0
        set_aside, failures = self._set_aside_before, self._failures_before
        derive = self._derive
        if derive is not None:
            set_aside += derive.set_aside_total
            failures += derive.failures
        return int(queued), int(now), set_aside, failures
