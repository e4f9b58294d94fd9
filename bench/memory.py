"""Memory of a collector process under maximum-size OTLP requests of many small spans.

Starts `python -m otel_threads.collector` (default settings: decode workers, --memory-limit 512MiB,
--max-ingest-memory 256MiB), sends N concurrent requests of SPANS tiny spans each
(protobuf, or OTLP/JSON with ``json``), samples the RSS of the collector and of its
decode workers every 10 ms, and prints the peak growth over the idle process of each,
with the answers. It also polls /metrics for DuckDB's buffer and prints the largest
working set beyond it (collector + workers - DuckDB, over idle): the figure the README
bounds. Run:

    python bench/memory.py [SPANS] [CONCURRENT] [protobuf|json]   (default 320000 1 protobuf)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from collector_process import start_collector
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

ROOT = Path(__file__).resolve().parents[1]


def request(k: int, n: int) -> bytes:
    spans = [
        trace_pb2.Span(
            trace_id=(k * 10_000_000 + j // 8 + 1).to_bytes(16, "big"),
            span_id=(k * 10_000_000 + j + 1).to_bytes(8, "big"),
            name="s",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
        )
        for j in range(n)
    ]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    ).SerializeToString()


def json_request(k: int, n: int) -> bytes:
    spans = [
        {
            "traceId": f"{k * 10_000_000 + j // 8 + 1:032x}",
            "spanId": f"{k * 10_000_000 + j + 1:016x}",
            "name": "s",
            "startTimeUnixNano": "1",
            "endTimeUnixNano": "2",
        }
        for j in range(n)
    ]
    return json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}, separators=(",", ":")
    ).encode()


def metrics(api: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{api}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 320_000
    concurrent = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    fmt = sys.argv[3] if len(sys.argv) > 3 else "protobuf"
    make = json_request if fmt == "json" else request
    bodies = [make(k, n) for k in range(concurrent)]
    media = "application/json" if fmt == "json" else "application/x-protobuf"
    print(f"{concurrent} {fmt} request(s) of {n} spans, {len(bodies[0]) / (1 << 20):.1f} MiB each")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        log = (Path(tmp) / "log").open("w")
        proc, note = start_collector(db, log)
        try:
            time.sleep(1)
            base = rss_mib(proc.pid)
            base_workers = sum(rss_mib(c) for c in children(proc.pid))
            peak = [base, base_workers]
            done = threading.Event()
            idle = metrics(note["api"])
            beyond = [0.0, 0.0]  # largest working set beyond DuckDB, DuckDB's then

            def sample() -> None:
                while not done.is_set():
                    try:
                        peak[0] = max(peak[0], rss_mib(proc.pid))
                        peak[1] = max(peak[1], sum(rss_mib(c) for c in children(proc.pid)))
                    except OSError:
                        pass
                    time.sleep(0.01)

            def sample_metrics() -> None:
                key = 'otel_threads_memory_bytes{part="%s"}'
                while not done.is_set():
                    m = metrics(note["api"])
                    duck = m.get(key % "duckdb", 0.0)
                    work = sum(m[key % p] - idle[key % p] for p in ("collector", "decode_workers"))
                    work -= duck - idle.get(key % "duckdb", 0.0)
                    if work > beyond[0]:
                        beyond[:] = [work, duck]
                    time.sleep(0.1)

            answers: list[int] = []

            def send(body: bytes) -> None:
                req = urllib.request.Request(
                    f"{note['http']}/v1/traces", data=body, headers={"Content-Type": media}
                )
                try:
                    with urllib.request.urlopen(req, timeout=600) as resp:
                        answers.append(resp.status)
                except urllib.error.HTTPError as exc:
                    answers.append(exc.code)
                except (urllib.error.URLError, OSError):
                    answers.append(0)  # reset while sending

            sampler = threading.Thread(target=sample)
            sampler.start()
            watcher = threading.Thread(target=sample_metrics)
            watcher.start()
            started = time.monotonic()
            senders = [threading.Thread(target=send, args=(b,)) for b in bodies]
            for t in senders:
                t.start()
            for t in senders:
                t.join()
            took = time.monotonic() - started
            time.sleep(3)  # derivation runs once exports stop
            done.set()
            sampler.join()
            watcher.join()
            print(f"answers {sorted(answers)} in {took:.1f}s (0: reset while sending)")
            print(
                f"collector: idle {base} MiB, peak {peak[0]} MiB (+{peak[0] - base}), "
                f"after {rss_mib(proc.pid)} MiB"
            )
            print(
                f"decode workers ({os.cpu_count()}): idle {base_workers} MiB, peak "
                f"{peak[1]} MiB (+{peak[1] - base_workers})"
            )
            print(f"all: +{peak[0] - base + peak[1] - base_workers} MiB at most")
            print(
                f"working set beyond DuckDB's buffer: +{beyond[0] / (1 << 20):.0f} MiB at "
                f"most (DuckDB's buffer then {beyond[1] / (1 << 20):.0f} MiB), sampled "
                f"every 100 ms"
            )
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
