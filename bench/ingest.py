"""Ingest throughput: pre-encoded OTLP over concurrent gRPC channels into a DuckDB file.

    python bench/ingest.py [--requests 600] [--channels 32] [--workers auto]

Builds ``--requests`` ExportTraceServiceRequests of 512 spans each (10 attributes
of about 20 characters, spans in threads of turns), starts the collector as its
own process (`python -m otel_threads.collector`, writing a DuckDB *file*), sends every request
once over ``--channels`` concurrent gRPC channels, and prints acknowledged
spans/s. An acknowledgement means committed, so the figure is durable
throughput. Afterwards it stops the collector and checks that the file holds
exactly the acknowledged spans. Target: >= 100,000 spans/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import duckdb
import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

SPANS_PER_REQUEST = 512
METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# what the SDK's OTLP exporters retry (the collector answers overload with these)
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def build_requests(n: int, seed: int = 7) -> list[bytes]:
    """n requests; each trace is one turn of a thread: a root turn span and children."""
    rnd = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    resource = Resource(
        attributes=[
            _kv("service.name", "bench-service"),
            _kv("service.version", "1.2.3"),
            _kv("deployment.environment", "bench"),
        ]
    )
    scope = InstrumentationScope(name="bench.instrumentation", version="0.1")
    now = time.time_ns()
    out = []
    for r in range(n):
        spans = []
        for t in range(SPANS_PER_REQUEST // 8):  # 8 spans per trace (one turn)
            trace_id = rnd.getrandbits(128).to_bytes(16, "big")
            thread_id = f"thread-{rnd.randrange(2000):05d}"
            root = rnd.getrandbits(64).to_bytes(8, "big")
            turn_hex = root.hex()
            start = now + (r * 64 + t) * 1_000_000
            for i in range(8):
                sid = root if i == 0 else rnd.getrandbits(64).to_bytes(8, "big")
                attrs = [
                    _kv("gen_ai.conversation.id", thread_id),
                    _kv("otel_threads.turn_id", turn_hex),
                ]
                if i == 0:
                    attrs.append(_kv("otel_threads.is_turn", True))
                while len(attrs) < 10:
                    attrs.append(
                        _kv(
                            f"app.attr_{len(attrs)}",
                            "-".join(rnd.choice(words) for _ in range(3))[:20],
                        )
                    )
                spans.append(
                    trace_pb2.Span(
                        trace_id=trace_id,
                        span_id=sid,
                        parent_span_id=b"" if i == 0 else root,
                        name="handle_message" if i == 0 else f"step-{i}",
                        kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
                        start_time_unix_nano=start + i * 1000,
                        end_time_unix_nano=start + 900_000,
                        attributes=attrs,
                    )
                )
        req = trace_service_pb2.ExportTraceServiceRequest(
            resource_spans=[
                trace_pb2.ResourceSpans(
                    resource=resource, scope_spans=[trace_pb2.ScopeSpans(scope=scope, spans=spans)]
                )
            ]
        )
        out.append(req.SerializeToString())
    return out


def start_collector(db: str, workers: str) -> tuple[subprocess.Popen, dict]:
    note = Path(f"{db}.collector.json")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_threads.collector",
            "--db",
            db,
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "off",
            "--api",
            "127.0.0.1:0",
            "--parse-workers",
            workers,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if note.exists():
            return proc, json.loads(note.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("collector did not start within 60s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--workers", default="auto", help="collector --parse-workers")
    args = ap.parse_args()

    t0 = time.perf_counter()
    requests = build_requests(args.requests)
    print(
        f"built {len(requests)} requests x {SPANS_PER_REQUEST} spans "
        f"({sum(map(len, requests)) / len(requests) / 1024:.0f} KiB each) "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.duckdb")
        proc, note = start_collector(db, args.workers)
        target = note["grpc"].split("://", 1)[1]
        acked = [0] * args.channels
        retries = [0] * args.channels
        errors: list[str] = []
        next_index = iter(range(len(requests)))
        lock = threading.Lock()

        def sender(slot: int) -> None:
            with grpc.insecure_channel(target) as channel:
                call = channel.unary_unary(
                    METHOD, request_serializer=None, response_deserializer=None
                )
                while True:
                    with lock:
                        i = next(next_index, None)
                    if i is None:
                        return
                    for _attempt in range(200):
                        try:
                            call(requests[i], timeout=60)
                            acked[slot] += SPANS_PER_REQUEST
                            break
                        except grpc.RpcError as exc:
                            if exc.code() not in RETRYABLE:
                                errors.append(f"{exc.code()}: {exc.details()}")
                                return
                            retries[slot] += 1  # as OTLP exporters do: back off, retry
                            time.sleep(0.05)

        threads = [threading.Thread(target=sender, args=(s,)) for s in range(args.channels)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        total = sum(acked)
        with urllib.request.urlopen(note["api"] + "/metrics", timeout=10) as resp:
            metrics = dict(
                line.rsplit(" ", 1)
                for line in resp.read().decode().splitlines()
                if line.startswith("otel_threads_commit_seconds_")
            )
        commits = float(metrics["otel_threads_commit_seconds_count"])
        commit_s = float(metrics["otel_threads_commit_seconds_sum"])
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        with duckdb.connect(db, read_only=True) as con:
            stored = con.execute("SELECT count(*) FROM spans").fetchone()[0]

    print(f"channels={args.channels} parse_workers={args.workers} retried exports={sum(retries)}")
    print(
        f"acknowledged {total} spans in {elapsed:.2f}s = {total / elapsed:,.0f} spans/s "
        f"(target >= 100,000)"
    )
    print(f"stored {stored} spans: {'OK, equal' if stored == total else 'MISMATCH'}")
    print(
        f"{commits:.0f} commits, {total / max(commits, 1):,.0f} spans and "
        f"{commit_s / max(commits, 1) * 1000:.1f} ms each on average (group commit)"
    )
    if errors:
        print(f"errors: {errors[:3]}")


if __name__ == "__main__":
    main()
