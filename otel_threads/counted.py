"""Log once, then count: for a failure that can repeat at the rate of the data (every
span, every round), the log gets the first ones in full and the rest only at DEBUG,
while a counter keeps the total for /metrics, a property or a table."""

from __future__ import annotations

import logging
import threading

__all__ = ["Counted"]


class Counted:
    """Calls count; the first ``logged`` of them are logged at ``level`` (with the
    traceback of the exception being handled, if any), later ones at DEBUG."""

    def __init__(self, logger: logging.Logger, logged: int = 1, level: int = logging.ERROR) -> None:
        self._logger = logger
        self.logged = logged
        self.level = level
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def __call__(self, message: str, *args: object, exc_info: bool = False) -> int:
        """Count one; log it as said above. Returns the count so far."""
        with self._lock:
            self._count += 1
            n = self._count
        level = self.level if n <= self.logged else logging.DEBUG
        self._logger.log(level, message, *args, exc_info=exc_info)
        return n
