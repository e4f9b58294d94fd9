"""Derivation on several threads at once: what keeps two refreshes apart.

A store may derive with several workers (otel_threads.store.derive_worker), each taking
the queued traces of a share of the threads (`Queue._oldest`). Their transactions run
side by side in DuckDB, which refuses a commit only when two transactions change the
same row; two refreshes of one thread could still both insert its first rows, or derive
from a state of it that the other has just changed. A thread's traces come to a refresh
of another share now and then (a trace with no thread id that links bring into one, a
trace whose spans name two threads): `Claims` keeps such refreshes apart.

- A refresh claims the traces and threads it writes before it writes them
  (`Claims.claim`), within its transaction.
- The claim fails (`Contended`) while another refresh holds one of them, or when one of
  them was committed by another refresh after this transaction began (its snapshot does
  not show that commit): the transaction rolls back, nothing is taken off the queue, and
  the refresh is tried again.
- The claims go when the transaction has ended (`Claims.release`), marked with the
  commit's number when it committed.

`SharedLock`: the store's lock that keeps checkpoints (and the other writes that must
not run beside derivation) apart from refreshes: refreshes share it, they take it alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = ["Claims", "Contended", "Share", "SharedLock"]


class Contended(Exception):
    """A refresh needs a trace or thread that another refresh holds or has just changed:
    its transaction rolls back and it is tried again."""


class Claims:
    """The traces and threads that derivation's refreshes hold, and when each was last
    committed (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._epoch = 0  # commits of claimed keys so far
        self._held: dict[object, int] = {}  # key -> the transaction holding it
        self._changed: dict[object, int] = {}  # key -> epoch of its last commit
        self._open: dict[int, int] = {}  # transaction -> epoch when it began
        self._next = 0

    def begin(self) -> int:
        """A transaction is about to begin: its number (call before its BEGIN)."""
        with self._lock:
            self._next += 1
            self._open[self._next] = self._epoch
            return self._next

    def claim(self, transaction: int, keys: Iterable[object]) -> None:
        """Hold ``keys`` for ``transaction``, all or none; `Contended` when another
        transaction holds one, or committed one after this one began."""
        keys = set(keys)
        with self._lock:
            began = self._open[transaction]
            for key in keys:
                holder = self._held.get(key)
                if (holder is not None and holder != transaction) or self._changed.get(
                    key, -1
                ) > began:
                    raise Contended(f"{key!r} is being derived by another refresh")
            for key in keys:
                self._held[key] = transaction

    def release(self, transaction: int, committed: bool) -> None:
        """``transaction`` ended (after its COMMIT or ROLLBACK): its keys go, marked as
        changed when it committed."""
        with self._lock:
            self._open.pop(transaction)
            mine = [key for key, holder in self._held.items() if holder == transaction]
            if committed and mine:
                self._epoch += 1
                for key in mine:
                    self._changed[key] = self._epoch
            for key in mine:
                del self._held[key]
            # a mark matters only to the transactions that began before it
            oldest = min(self._open.values(), default=self._epoch)
            self._changed = {k: e for k, e in self._changed.items() if e > oldest}
            self._lock.notify_all()

    def wait(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for a transaction to end: a contended refresh's
        next try."""
        with self._lock:
            self._lock.wait(timeout)


class Share(NamedTuple):
    """Of a deriver beside others: it takes the queued traces of the ``part``-th of
    ``parts`` shares of the threads, and holds ``claims`` with the others."""

    part: int
    parts: int
    claims: Claims


class SharedLock:
    """A lock that derivation's refreshes hold together (`shared`) and anything else
    alone (`acquire`/`release`, as `threading.Lock`, or ``with``). One waiting to hold
    it alone keeps new shared holders out, so refreshes back to back never starve it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        with self._cond:
            free = lambda: not self._alone and self._shared == 0  # noqa: E731
            if free():
                self._alone = True
                return True
            if not blocking:
                return False
            self._waiting += 1
            try:
                if not self._cond.wait_for(free, None if timeout < 0 else timeout):
                    return False
            finally:
                self._waiting -= 1
                self._cond.notify_all()
            self._alone = True
            return True

    def release(self) -> None:
        with self._cond:
            if not self._alone:
                raise RuntimeError("release of a SharedLock not held alone")
            self._alone = False
            self._cond.notify_all()

    def locked(self) -> bool:
        """Whether anyone holds it (alone or shared)."""
        with self._cond:
            return self._alone or self._shared > 0

    def __enter__(self) -> SharedLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Hold it beside the other shared holders."""
        with self._cond:
            self._cond.wait_for(lambda: not self._alone and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()
