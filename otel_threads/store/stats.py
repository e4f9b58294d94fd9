"""The writer's counters, read by the collector's /metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["KINDS", "LATENCY_BUCKETS", "Histogram", "RefreshStats", "WriterStats"]

KINDS = ("spans", "logs")

# Buckets (seconds) of the latency histograms exported on /metrics.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Histogram:
    """Durations (seconds) in `LATENCY_BUCKETS` (counts of those at most each bound),
    their count, sum and the largest. Updated by one thread; read anywhere."""

    count: int = 0
    seconds_sum: float = 0.0
    seconds_max: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.seconds_sum += seconds
        self.seconds_max = max(self.seconds_max, seconds)
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1


@dataclass
class RefreshStats:
    """Derivation's refreshes that derived traces: how long each took (the wait for a
    checkpoint before it not counted) and how many traces they took off the queue in all
    (derived, or set aside when they fail). Under steady load a refresh's length is about
    what the derived views lag by. Updated by the derive threads; read anywhere."""

    seconds: Histogram = field(default_factory=Histogram)
    traces: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def observe(self, seconds: float, traces: int) -> None:
        with self._lock:  # (derive workers side by side)
            self.seconds.observe(seconds)
            self.traces += traces


@dataclass
class WriterStats:
    """Counters for /metrics. Updated by the writer thread; read anywhere."""

    received: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    overloaded: int = 0
    failed_batches: int = 0
    commit_seconds: Histogram = field(default_factory=Histogram)
    pending_rows: int = 0
