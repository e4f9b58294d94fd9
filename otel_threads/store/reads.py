"""`Reads`: the reading side of a `Store`, and all the API (and the demo) get of it:
whether the store is healthy, and cursors of their own.

Derivation runs behind the writer's commits (otel_threads.store.derive_worker): a read may find
the derived views a little behind what was acknowledged. Whether to wait for them is
the caller's choice, per read, and bounded: ``read(wait_s=...)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb

from otel_threads.store.health import Fault
from otel_threads.store.store import Store

__all__ = ["Reads"]


class Reads:
    """Read ``store``: `fault`, `read`, `sync` (and nothing that writes)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def fault(self) -> Fault | None:
        """Why the store cannot commit now, or None when it can."""
        return self._store.fault

    def sync(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds until every acknowledged write is derived;
        whether it was."""
        return self._store.sync(timeout)

    @contextlib.contextmanager
    def read(self, wait_s: float = 0.0) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own on the store (`StoreClosed` while it is closed). With
        ``wait_s`` > 0 it first waits up to that long for derivation to catch up with
        what was acknowledged (read your writes); with 0 it reads what is derived now."""
        if wait_s > 0:
            self._store.sync(wait_s)
        with self._store.cursor() as con:
            yield con
