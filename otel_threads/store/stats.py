"""The writer's counters, read by the collector's /metrics."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

__all__ = ["KINDS", "LATENCY_BUCKETS", "Histogram", "RefreshStats", "ThreadCpu", "WriterStats"]

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


class ThreadCpu:
    """The CPU time (user and system) the calling thread used since the last `lap`, or
    since it made this: made and read on that one thread (``time.thread_time``)."""

    def __init__(self) -> None:
        self._seen = time.thread_time()

    def lap(self) -> float:
        now = time.thread_time()
        used, self._seen = now - self._seen, now
        return used


@dataclass
class RefreshStats:
    """Derivation's refreshes that derived traces: how long each took (the wait for a
    checkpoint before it not counted) and how many traces they took off the queue in all
    (derived, or set aside when they fail). Under steady load a refresh's length is about
    what the derived views lag by. And the CPU seconds the derive threads used
    (``cpu_seconds``, those of threads ended too: a reopen of the store starts new ones).
    Updated by the derive threads; read anywhere."""

    seconds: Histogram = field(default_factory=Histogram)
    traces: int = 0
    cpu_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def observe(self, seconds: float, traces: int) -> None:
        with self._lock:  # (derive workers side by side)
            self.seconds.observe(seconds)
            self.traces += traces

    def add_cpu(self, seconds: float) -> None:
        with self._lock:
            self.cpu_seconds += seconds


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
    #: CPU seconds the writer's thread used (its commits, checkpoints, waits for work)
    cpu_seconds: float = 0.0
