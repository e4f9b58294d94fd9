"""/metrics: the collector's counters and gauges in Prometheus text format."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

import duckdb

from otel_threads.store.errors import StoreClosed
from otel_threads.store.stats import LATENCY_BUCKETS, Histogram

if TYPE_CHECKING:
    from otel_threads.collector.app import Collector

__all__ = [
    "CpuParts",
    "metric_lines",
    "process_cpu_seconds",
    "render_metrics",
    "resident_bytes",
]


def resident_bytes(pid: int) -> int:
    """A process's resident set (VmRSS), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_cpu_seconds(pid: int) -> float | None:
    """A process's user and system CPU seconds (/proc/PID/stat), None when it is gone
    or there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # (after the name: the state is field 3, utime and stime fields 14 and 15)
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class CpuParts:
    """The collector's CPU seconds since start by part, as counters (never less than
    read before): its writer's thread, its derive threads (as they last counted them: at
    each turn of the writer's loop, after each refresh), the rest of its process (the
    receivers, the API, Python's own; the writer's and derivation's time not counted yet
    shows here until they count it), and its decode worker processes (from /proc: those
    alive now, and those that ended as last read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._other = 0.0
        self._workers: dict[int, float] = {}
        self._workers_gone = 0.0

    def samples(
        self, writer_s: float, derive_s: float, worker_pids: list[int]
    ) -> list[tuple[str, float]]:
        with self._lock:
            total = sum(os.times()[:2])  # (every thread of the process, ended ones too)
            self._other = max(self._other, total - writer_s - derive_s)
            samples = [
                ('{part="writer"}', writer_s),
                ('{part="derive"}', derive_s),
                ('{part="other"}', self._other),
            ]
            alive = {pid: t for pid in worker_pids if (t := process_cpu_seconds(pid)) is not None}
            for pid in set(self._workers) - set(alive):
                self._workers_gone += self._workers.pop(pid)
            self._workers.update(alive)
            if self._workers or self._workers_gone:
                workers = self._workers_gone + sum(self._workers.values())
                samples.append(('{part="decode_workers"}', workers))
            return samples


def metric_lines(
    name: str, kind: str, help_text: str, samples: list[tuple[str, float]]
) -> list[str]:
    """One metric in Prometheus text format: its HELP, its TYPE, and a line per
    (labels, value) sample."""
    return [
        f"# HELP {name} {help_text}",
        f"# TYPE {name} {kind}",
        *(f"{name}{labels} {_number(value)}" for labels, value in samples),
    ]


def _number(value: float) -> str:
    """A sample's value: a count exactly, a float to 15 digits (a byte count or a Unix
    time keeps every digit that matters)."""
    if isinstance(value, int):
        return str(int(value))
    return f"{value:.15g}"


def render_metrics(collector: Collector) -> str:
    """Counters and gauges of the receivers and the writer, in Prometheus text format."""
    w = collector.writer.stats
    ingest = collector.ingest
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend(metric_lines(name, kind, help_text, samples))

    def histogram(name: str, help_text: str, h: Histogram) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} histogram")
        for bound, n in zip(LATENCY_BUCKETS, h.buckets, strict=True):
            lines.append(f'{name}_bucket{{le="{bound:g}"}} {n}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {h.count}')
        lines.append(f"{name}_sum {h.seconds_sum:g}")
        lines.append(f"{name}_count {h.count}")

    kinds = ("spans", "logs")
    metric(
        "otel_threads_received_total",
        "counter",
        "Rows decoded and handed to the writer.",
        [(f'{{signal="{k}"}}', w.received[k]) for k in kinds],
    )
    metric(
        "otel_threads_rejected_total",
        "counter",
        "Rows rejected through partial_success (e.g. malformed ids).",
        [
            ('{signal="spans"}', ingest.rejected["traces"]),
            ('{signal="logs"}', ingest.rejected["logs"]),
        ],
    )
    metric(
        "otel_threads_invalid_requests_total",
        "counter",
        "Requests refused as undecodable (INVALID_ARGUMENT / 400).",
        [("", ingest.invalid_requests)],
    )
    metric(
        "otel_threads_written_total",
        "counter",
        "Rows committed to the database.",
        [(f'{{signal="{k}"}}', w.written[k]) for k in kinds],
    )
    metric(
        "otel_threads_duplicates_total",
        "counter",
        "Redelivered rows that were already stored and dropped.",
        [(f'{{signal="{k}"}}', w.duplicates[k]) for k in kinds],
    )
    metric(
        "otel_threads_overloaded_total",
        "counter",
        "Exports answered UNAVAILABLE / 503 because the writer queue was full.",
        [("", w.overloaded + ingest.overloaded)],
    )
    metric(
        "otel_threads_failed_batches_total",
        "counter",
        "Commits that failed.",
        [("", w.failed_batches)],
    )
    metric(
        "otel_threads_store_up",
        "gauge",
        "1 while the store commits durably; 0 while exports are refused (see the log).",
        [("", 0 if collector.store.fault else 1)],
    )
    metric(
        "otel_threads_store_faults_total",
        "counter",
        "Times the store could not commit durably (deleted, read-only, fatal error...).",
        [("", collector.store.faults)],
    )
    metric("otel_threads_queue_rows", "gauge", "Rows waiting for a commit.", [("", w.pending_rows)])
    metric(
        "otel_threads_inflight_bytes",
        "gauge",
        "Memory held by exports under way: request bytes, JSON parses, decoded rows "
        "(at most --max-ingest-memory).",
        [("", ingest.inflight_bytes)],
    )
    memory = [
        ('{part="collector"}', resident_bytes(os.getpid())),
        ('{part="decode_workers"}', sum(resident_bytes(p) for p in ingest.worker_pids())),
    ]
    with contextlib.suppress(StoreClosed, duckdb.Error), collector.store.cursor() as cur:
        row = cur.execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
        ).fetchone()
        memory.append(('{part="duckdb"}', row[0] if row else 0))
    metric(
        "otel_threads_memory_bytes",
        "gauge",
        "Resident memory of the collector process and of its decode workers, and "
        "DuckDB's buffer (part of the collector's, at most --memory-limit).",
        memory,
    )
    metric(
        "otel_threads_cpu_seconds_total",
        "counter",
        "CPU seconds (user and system) since start: the writer's thread (the one every "
        "acknowledgement waits for), the derive threads, the rest of the collector "
        "process, and its decode worker processes (where /proc says: Linux).",
        collector.cpu.samples(
            w.cpu_seconds, collector.store.refreshes.cpu_seconds, ingest.worker_pids()
        ),
    )
    budget = collector.memory
    metric(
        "otel_threads_index_memory_bytes",
        "gauge",
        "What the store's indexes held in DuckDB's memory when last measured: about "
        "their whole size between two checkpoints, growing with the store.",
        [("", budget.index_bytes)],
    )
    metric(
        "otel_threads_memory_limit_bytes",
        "gauge",
        "DuckDB's memory limit (--memory-limit; with auto, raised as the indexes grow).",
        [("", budget.limit)],
    )
    queued, errors_now, set_aside, derive_failures = collector.store.derive_health()
    metric(
        "otel_threads_derive_queue_traces",
        "gauge",
        "Traces stored but not derived yet (threads, turns and transcripts lag by them).",
        [("", queued)],
    )
    metric(
        "otel_threads_derive_errors",
        "gauge",
        "Traces whose derivation fails, set aside (the table derive_errors lists them).",
        [("", errors_now)],
    )
    metric(
        "otel_threads_derive_set_aside_total",
        "counter",
        "Times a trace was set aside because its derivation failed.",
        [("", set_aside)],
    )
    metric(
        "otel_threads_derive_failures_total",
        "counter",
        "Derivation runs that failed on an error of the store (retried).",
        [("", derive_failures)],
    )
    if collector.retention is not None:
        metric(
            "otel_threads_pruned_threads_total",
            "counter",
            "Threads deleted by --retention since start.",
            [("", collector.retention.pruned_threads)],
        )
    histogram(
        "otel_threads_commit_seconds", "Time to write and commit one group.", w.commit_seconds
    )
    refreshes = collector.store.refreshes
    histogram(
        "otel_threads_derive_refresh_seconds",
        "Time of one refresh of the derived tables (a batch of traces); under steady load "
        "the derived views lag by about one.",
        refreshes.seconds,
    )
    metric(
        "otel_threads_derived_traces_total",
        "counter",
        "Traces refreshes took off the derivation queue since start (derived, or set aside "
        "when they fail to derive).",
        [("", refreshes.traces)],
    )
    histogram(
        "otel_threads_checkpoint_seconds",
        "Time of one checkpoint (the WAL folded into the file); reads of the store wait "
        "while one runs.",
        collector.store.checkpoint_seconds,
    )
    histogram(
        "otel_threads_store_reopen_seconds",
        "Time of one opening again of the store (after a while of derivation: statements "
        "get slower in a database open long); commits and reads wait while one runs.",
        collector.store.recycle_seconds,
    )
    metric(
        "otel_threads_checkpoint_max_seconds",
        "gauge",
        "The longest checkpoint since start.",
        [("", collector.store.checkpoint_seconds.seconds_max)],
    )
    return "\n".join(lines) + "\n"
