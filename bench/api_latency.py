"""API latency while ingest runs: how long the web page's reads take under sustained load.

Starts `python -m otel_threads.collector` (default settings), then for ``--seconds``
keeps ``--senders`` exporters busy sending OTLP/HTTP protobuf requests of ``--turns``
turns each (a turn span and an LLM call with semconv messages, threads of 10 turns),
while one reader loops over the page's reads and times each:

  - ``GET /ui/threads`` (the list; waits for derivation up to 2 s, the default),
  - ``GET /ui/threads?wait=0`` (the list as derived now),
  - ``GET /threads/{id}?wait=0`` (one thread's detail, as derived now).

The same reads are then timed idle (ingest stopped, derivation caught up). It prints
medians and 95th percentiles of each, under ingest and idle, their ratio, the spans
acknowledged per second meanwhile, and how long derivation took to catch up. Run:

    python bench/api_latency.py [--seconds 30] [--senders 2] [--turns 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from collector_process import start_collector
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

READS = ("/ui/threads", "/ui/threads?wait=0", "/threads/{id}?wait=0")


def _attr(key: str, value: str | bool) -> common_pb2.KeyValue:
    any_value = (
        common_pb2.AnyValue(bool_value=value)
        if isinstance(value, bool)
        else common_pb2.AnyValue(string_value=value)
    )
    return common_pb2.KeyValue(key=key, value=any_value)


def request(k: int, turns: int) -> bytes:
    """Request ``k``: ``turns`` turns, each a trace of a turn span and an LLM call."""
    spans = []
    for j in range(turns):
        n = k * turns + j
        trace_id = (n + 1).to_bytes(16, "big")
        start = 1_700_000_000_000_000_000 + n * 1_000_000_000
        thread_id = f"thread-{n // 10}"
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=(2 * n + 1).to_bytes(8, "big"),
                name="handle_message",
                start_time_unix_nano=start,
                end_time_unix_nano=start + 900_000_000,
                attributes=[
                    _attr("gen_ai.conversation.id", thread_id),
                    _attr("otel_threads.is_turn", True),
                ],
            )
        )
        messages_in = json.dumps(
            [
                {
                    "role": "user",
                    "parts": [{"type": "text", "content": f"question {n}: " + "words " * 40}],
                }
            ]
        )
        messages_out = json.dumps(
            [
                {
                    "role": "assistant",
                    "finish_reason": "stop",
                    "parts": [{"type": "text", "content": f"answer {n}: " + "words " * 60}],
                }
            ]
        )
        spans.append(
            trace_pb2.Span(
                trace_id=trace_id,
                span_id=(2 * n + 2).to_bytes(8, "big"),
                parent_span_id=(2 * n + 1).to_bytes(8, "big"),
                name="chat gpt-4o-mini",
                start_time_unix_nano=start + 100_000_000,
                end_time_unix_nano=start + 800_000_000,
                attributes=[
                    _attr("gen_ai.conversation.id", thread_id),
                    _attr("gen_ai.operation.name", "chat"),
                    _attr("gen_ai.request.model", "gpt-4o-mini"),
                    _attr("gen_ai.input.messages", messages_in),
                    _attr("gen_ai.output.messages", messages_out),
                ],
            )
        )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    ).SerializeToString()


def get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        resp.read()
    return time.perf_counter() - started


def time_reads(api: str, thread_id: str, until: float) -> dict[str, list[float]]:
    took: dict[str, list[float]] = {path: [] for path in READS}
    while time.monotonic() < until:
        for path in READS:
            took[path].append(get(api + path.replace("{id}", thread_id)))
    return took


def queue(api: str) -> int:
    """Traces waiting to be derived (/metrics)."""
    with urllib.request.urlopen(f"{api}/metrics", timeout=60) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("otel_threads_derive_queue_traces "):
                return int(float(line.split()[1]))
    raise RuntimeError("no otel_threads_derive_queue_traces in /metrics")


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        log = (Path(tmp) / "log").open("w")
        proc, note = start_collector(db, log)
        try:
            api, http = note["api"], note["http"]
            # a store with something in it before the clock starts
            counter = iter(range(1 << 30))
            sent = [0]
            lock = threading.Lock()

            def send_one() -> None:
                with lock:
                    k = next(counter)
                req = urllib.request.Request(
                    f"{http}/v1/traces",
                    data=request(k, args.turns),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                try:
                    with urllib.request.urlopen(req, timeout=120) as resp:
                        resp.read()
                    with lock:
                        sent[0] += 2 * args.turns
                except urllib.error.HTTPError as exc:  # 503 under load: the exporter retries
                    exc.close()
                    time.sleep(0.5)

            for _ in range(5):
                send_one()
            deadline = time.monotonic() + 120
            while (
                json.loads(urllib.request.urlopen(f"{api}/ui/threads?limit=1", timeout=60).read())[
                    "total"
                ]
                == 0
            ):
                assert time.monotonic() < deadline, "nothing derived in 120 s"
                time.sleep(0.2)
            thread_id = "thread-3"
            stop = threading.Event()

            def sender() -> None:
                while not stop.is_set():
                    send_one()

            senders = [threading.Thread(target=sender) for _ in range(args.senders)]
            started = time.monotonic()
            before = sent[0]
            for t in senders:
                t.start()
            loaded = time_reads(api, thread_id, started + args.seconds)
            stop.set()
            for t in senders:
                t.join()
            rate = (sent[0] - before) / (time.monotonic() - started)
            # idle: derivation catches up first
            stopped, queued = time.monotonic(), queue(api)
            while queue(api):
                time.sleep(0.5)
            caught_up = time.monotonic() - stopped
            idle = time_reads(api, thread_id, time.monotonic() + min(args.seconds, 10))
            print(
                f"ingest: {args.senders} senders, {rate:,.0f} spans/s acknowledged "
                f"over {args.seconds:g}s"
            )
            print(
                f"derivation: {queued:,} traces queued when ingest stopped, derived "
                f"{caught_up:.1f}s later"
            )
            print(
                f"{'read':<28}{'under ingest p50/p95 ms':>26}{'idle p50/p95 ms':>20}"
                f"{'p50 ratio':>11}  n"
            )
            for path in READS:
                (lp50, lp95), (ip50, ip95) = summary(loaded[path]), summary(idle[path])
                print(
                    f"{path:<28}{lp50 * 1e3:>14.1f} /{lp95 * 1e3:>8.1f}"
                    f"{ip50 * 1e3:>11.1f} /{ip95 * 1e3:>6.1f}{lp50 / ip50:>10.1f}x"
                    f"  {len(loaded[path])}"
                )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
