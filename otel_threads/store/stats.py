"""The writer's counters, read by the collector's /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KINDS", "LATENCY_BUCKETS", "WriterStats"]

KINDS = ("spans", "logs")

# Buckets (seconds) of the commit latency histogram exported on /metrics.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class WriterStats:
    """Counters for /metrics. Updated by the writer thread; read anywhere."""

    received: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    duplicates: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    overloaded: int = 0
    failed_batches: int = 0
    commits: int = 0
    commit_seconds_sum: float = 0.0
    commit_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    pending_rows: int = 0

    def observe_commit(self, seconds: float) -> None:
        self.commits += 1
        self.commit_seconds_sum += seconds
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.commit_buckets[i] += 1
