"""`collect --retention AGE`: prune the store on a schedule (otel_threads.store.retention).

A thread of its own runs `prune` soon after start and then every `interval` (an hour,
or a 24th of the retention when that is shorter, at least a minute): threads last active
more than the retention ago go, whole. A prune that fails (it may meet derivation
writing the same rows) is logged once and tried again at the next round.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from otel_threads.counted import Counted
from otel_threads.store.retention import PruneResult, prune
from otel_threads.store.store import Store

__all__ = ["RetentionTask"]

_logger = logging.getLogger("otel_threads.collector")


class RetentionTask:
    """Prunes ``store`` of what is older than ``retention``, every `interval`."""

    def __init__(self, store: Store, retention: dt.timedelta, first_after_s: float = 5.0) -> None:
        self.store = store
        self.retention = retention
        self.interval_s = max(60.0, min(3600.0, retention.total_seconds() / 24))
        self.first_after_s = first_after_s
        self.pruned_threads = 0
        self._failures = Counted(_logger)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def failures(self) -> int:
        """Rounds that failed (the first one logged in full)."""
        return self._failures.count

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="otel-threads-retention", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Idempotent; safe before `start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run_once(self) -> PruneResult:
        before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - self.retention
        with self.store.cursor() as con, self.store.checkpoint_lock:
            res = prune(con, before)
        self.pruned_threads += res.threads
        if res.threads or res.traces or res.spans or res.logs:
            _logger.info(
                "retention %s: deleted %d threads, %d whole traces, %d spans and %d "
                "log records last active before %s UTC",
                self.retention,
                res.threads,
                res.traces,
                res.spans,
                res.logs,
                before.isoformat(timespec="seconds"),
            )
        return res

    def _run(self) -> None:
        wait = self.first_after_s
        while not self._stop.wait(wait):
            wait = self.interval_s
            try:
                self.run_once()
            except Exception:
                self._failures(
                    "pruning old threads failed; trying again in %.0fs (further "
                    "failures are only counted)",
                    self.interval_s,
                    exc_info=True,
                )
