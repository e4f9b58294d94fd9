"""`IndexMemory`: what the store's indexes hold in DuckDB's memory, measured for its
memory budget (otel_threads.store.memory_budget says why it matters).

A mixin of `otel_threads.store.store.Store`. `sample_index_memory` runs on the writer's
thread, after a commit; it reads the store's ``memory_budget`` and ``_con``, reads and
sets its ``_sampled_at`` and sets ``_reopen_wanted`` (for `Store.recycle_if_due`), and
calls its ``_store_error``. `memory_short` (a commit or a refresh out of memory) reads
and sets ``_reopen_wanted``.
"""

from __future__ import annotations

import time

import duckdb

from otel_threads.store.memory_budget import INDEX_MEMORY_SQL, SAMPLE_S

__all__ = ["IndexMemory"]


class IndexMemory:
    """The indexes' memory, measured for the memory budget."""

    def sample_index_memory(self) -> None:
        """Measure what the indexes hold in memory, at most every `SAMPLE_S` (by the
        writer's thread, after a commit) and tell the memory budget; when it raises the
        limit, the file is opened again to take it (`recycle_if_due`)."""
        budget, con = self.memory_budget, self._con
        now = time.monotonic()
        if budget is None or con is None or now - self._sampled_at < SAMPLE_S:
            return
        self._sampled_at = now
        try:
            row = con.execute(INDEX_MEMORY_SQL).fetchone()
        except duckdb.Error as exc:
            self._store_error(exc)
            return
        if budget.observe(int(row[0]) if row else 0):
            self._reopen_wanted = True

    def memory_short(self) -> bool:
        """DuckDB ran out of memory for the store (a commit, a refresh): whether the
        budget raised the limit (``auto``, below its cap; or a raise is pending), for the
        file opened again to take (`recycle_if_due`). Any thread."""
        budget = self.memory_budget
        if budget is None:
            return False
        if self._reopen_wanted or budget.out_of_memory():
            self._reopen_wanted = True
            return True
        return False
