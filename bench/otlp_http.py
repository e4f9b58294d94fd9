"""OTLP/HTTP ingest through the collector's HTTP server: acknowledged spans/s and RSS.

    python bench/otlp_http.py [--requests 300] [--clients 8] [--rounds 3] [--compare TREE]

Starts `python -m otel_threads.collector` (from this checkout, and with ``--compare`` also from
another source tree, e.g. a checkout of an earlier commit, alternating rounds), sends
``--requests`` OTLP/HTTP protobuf exports of 512 spans from ``--clients`` keep-alive
connections, half of them with Content-Length and half chunked (an earlier server that
refuses chunked bodies gets only Content-Length), and prints per round the acknowledged
spans/s and the collector's peak RSS (VmHWM), then the medians and their ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parents[1]
SPANS = 512


def bodies(n: int) -> list[bytes]:
    """``n`` distinct requests of 512 spans (10 attributes each, threads of 8 turns)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    out = []
    for r in range(n):
        memory.clear()
        for t in range(SPANS // 8):
            with tracer.start_as_current_span(
                "turn",
                attributes={
                    "gen_ai.conversation.id": f"thread-{r}-{t // 8}",
                    "k0": "v" * 20,
                    **{f"k{i}": i for i in range(1, 9)},
                },
            ):
                for _ in range(7):
                    with tracer.start_as_current_span(
                        "child", attributes={f"k{i}": "value" for i in range(10)}
                    ):
                        pass
        out.append(encode_spans(memory.get_finished_spans()).SerializeToString())
    return out


def run_collector(src: Path, db: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_threads.collector",
            "--db",
            str(db),
            "--grpc",
            "off",
            "--http",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ],
        cwd=src,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    note = Path(f"{db}.collector.json")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            found = json.loads(note.read_text())
            if found.get("pid") == proc.pid:
                return proc, found["http"].split("://", 1)[1]
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the collector from {src} did not start")


def send(target: str, work: list[bytes], chunked: bool, acked: list[int]) -> None:
    host, port = target.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    for body in work:
        headers = {"Content-Type": "application/x-protobuf"}
        if chunked:
            conn.request(
                "POST",
                "/v1/traces",
                body=iter([body[i : i + 16384] for i in range(0, len(body), 16384)]),
                headers={**headers, "Transfer-Encoding": "chunked"},
                encode_chunked=True,
            )
        else:
            conn.request("POST", "/v1/traces", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            acked.append(SPANS)
    conn.close()


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def one_round(src: Path, work: list[bytes], clients: int, chunked: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, target = run_collector(src, Path(tmp) / "bench.duckdb")
        try:
            acked: list[int] = []
            threads = [
                threading.Thread(
                    target=send, args=(target, work[i::clients], chunked and i % 2 == 1, acked)
                )
                for i in range(clients)
            ]
            began = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - began
            rss = peak_rss(proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
    return sum(acked) / took, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", type=Path, help="another source tree to run against")
    args = ap.parse_args()
    work = bodies(args.requests)
    trees = {"this": (ROOT, True)}
    if args.compare:
        trees["compare"] = (args.compare.resolve(), False)
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, (src, chunked) in trees.items():
            rate, rss = one_round(src, work, args.clients, chunked)
            results[name].append((rate, rss))
            print(
                f"round {r + 1} {name:8s} {rate:10,.0f} acknowledged spans/s   "
                f"peak RSS {rss >> 20:5d} MiB",
                flush=True,
            )
    medians = {
        n: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
        for n, v in results.items()
    }
    for name, (rate, rss) in medians.items():
        print(f"median  {name:8s} {rate:10,.0f} acknowledged spans/s   peak RSS {rss >> 20:5d} MiB")
    if "compare" in medians:
        print(
            f"ratio this/compare: spans/s {medians['this'][0] / medians['compare'][0]:.2f}, "
            f"peak RSS {medians['this'][1] / medians['compare'][1]:.2f}"
        )


if __name__ == "__main__":
    main()
