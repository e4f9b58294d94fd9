"""The API listener: /healthz and /metrics (Prometheus text) for now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector.httpbase import BaseHandler
from otel_threads.writer import LATENCY_BUCKETS

if TYPE_CHECKING:
    from collector.app import Collector

__all__ = ["ApiHandler", "render_metrics"]


def render_metrics(collector: Collector) -> str:
    """Counters and gauges of the receivers and the writer, in Prometheus text format."""
    w = collector.writer.stats
    ingest = collector.ingest
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    kinds = ("spans", "logs")
    metric("otel_threads_received_total", "counter", "Rows decoded and handed to the writer.",
           [(f'{{signal="{k}"}}', w.received[k]) for k in kinds])
    metric("otel_threads_rejected_total", "counter",
           "Rows rejected through partial_success (e.g. malformed ids).",
           [('{signal="spans"}', ingest.rejected["traces"]),
            ('{signal="logs"}', ingest.rejected["logs"])])
    metric("otel_threads_invalid_requests_total", "counter",
           "Requests refused as undecodable (INVALID_ARGUMENT / 400).",
           [("", ingest.invalid_requests)])
    metric("otel_threads_written_total", "counter", "Rows committed to the database.",
           [(f'{{signal="{k}"}}', w.written[k]) for k in kinds])
    metric("otel_threads_duplicates_total", "counter",
           "Redelivered rows that were already stored and dropped.",
           [(f'{{signal="{k}"}}', w.duplicates[k]) for k in kinds])
    metric("otel_threads_overloaded_total", "counter",
           "Exports answered UNAVAILABLE / 503 because the writer queue was full.",
           [("", w.overloaded + ingest.overloaded)])
    metric("otel_threads_failed_batches_total", "counter", "Commits that failed.",
           [("", w.failed_batches)])
    metric("otel_threads_queue_rows", "gauge", "Rows waiting for a commit.",
           [("", w.pending_rows)])
    metric("otel_threads_inflight_bytes", "gauge", "Request bytes being decoded or written.",
           [("", ingest.inflight_bytes)])
    buckets = [(f'{{le="{b:g}"}}', n) for b, n in zip(LATENCY_BUCKETS, w.commit_buckets,
                                                       strict=True)]
    buckets.append(('{le="+Inf"}', w.commits))
    lines.append("# HELP otel_threads_commit_seconds Time to write and commit one group.")
    lines.append("# TYPE otel_threads_commit_seconds histogram")
    lines.extend(f"otel_threads_commit_seconds_bucket{lb} {n}" for lb, n in buckets)
    lines.append(f"otel_threads_commit_seconds_sum {w.commit_seconds_sum:g}")
    lines.append(f"otel_threads_commit_seconds_count {w.commits}")
    return "\n".join(lines) + "\n"


class ApiHandler(BaseHandler):
    collector: Collector  # set by HttpListener
    open_paths = frozenset({"/healthz"})

    def do_GET(self) -> None:
        if not self.authorized():
            return
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self.reply_json(200, {"status": "ok", "db": self.collector.config.db})
        elif path == "/metrics":
            self.reply(200, render_metrics(self.collector).encode(),
                       "text/plain; version=0.0.4; charset=utf-8")
        else:
            self.reply_json(404, {"error": f"no such endpoint {path}"})
