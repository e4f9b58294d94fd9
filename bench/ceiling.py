"""What this machine leaves the collector: the soak's senders against a receiver that only
parses, against the collector, and against the collector with derivation off, in one run.

    python bench/ceiling.py [--exporters 4,32] [--seconds 60] [--rounds 2]
                            [--receivers parse,collector,ingest-only]

`bench/soak.py` runs its senders on the collector's machine: their CPU (making turns,
encoding requests, gRPC) comes out of what the collector gets. Here the same senders
(`soak.sender_process`: requests of 512 spans, one in flight per exporter) feed, for
``--seconds`` each, in turn:

  - ``parse``: a gRPC server that parses each request (opentelemetry-proto's
    ExportTraceServiceRequest, protobuf's C implementation), counts its spans and
    acknowledges it; it stores nothing. Its rate is the most any receiver on this
    machine could acknowledge from these senders;
  - ``collector``: ``python -m otel_threads.collector`` on a new file (default
    settings), from empty: derivation runs beside ingest, as in the soak.

Prints acknowledged spans/s of each, the collector's share of the parse-only rate, and
the machine's CPU use (the senders' share of it from their processes' CPU time), per
round and their medians. The rounds alternate the two receivers (a shared machine
drifts).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import IO

import grpc
from collector_process import start_collector
from soak import EXPORT, sender_process

from otel_threads.collector.metrics import process_cpu_seconds


def _parse_server(ready, stop) -> None:
    """A gRPC server on a free port of 127.0.0.1 that parses each Export request and
    acknowledges it (its port put in ``ready``); until ``stop``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    answer = ExportTraceServiceResponse().SerializeToString()

    def export(payload: bytes, context) -> bytes:
        parsed = ExportTraceServiceRequest.FromString(payload)
        sum(len(s.spans) for r in parsed.resource_spans for s in r.scope_spans)
        return answer

    handler = grpc.method_handlers_generic_handler(
        EXPORT.split("/")[1],
        {EXPORT.split("/")[2]: grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    ready.put(port)
    stop.wait()
    server.stop(0)


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds the processes ``pids`` have used (user and system)."""
    return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)


def _busy_s() -> float:
    """CPU seconds the machine has used, all cores (not idle, not waiting for I/O)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def feed(target: str, exporters: int, processes: int, seconds: float) -> tuple[float, float, float]:
    """``exporters`` of the soak's senders (in ``processes`` processes) on ``target`` for
    ``seconds`` after a warm-up: acknowledged spans/s, the machine's cores busy, and the
    senders' cores."""
    counts, stop = mp.Array("q", 3), mp.Event()
    ctx = mp.get_context("fork")
    per = [exporters // processes + (i < exporters % processes) for i in range(processes)]
    senders = [
        ctx.Process(target=sender_process, args=(target, 1000 * (i + 1), n, counts, stop))
        for i, n in enumerate(per)
        if n
    ]
    for p in senders:
        p.start()
    time.sleep(5)  # (warm-up: connections, the first requests)
    first, busy, own, start = counts[0], _busy_s(), _cpu_s([p.pid for p in senders]), time.time()
    time.sleep(seconds)
    spans = counts[0] - first
    took = time.time() - start
    busy = (_busy_s() - busy) / took
    own = (_cpu_s([p.pid for p in senders]) - own) / took
    stop.set()
    for p in senders:
        p.join(timeout=180)
    return spans / took, busy, own


RECEIVERS = ("parse", "collector", "ingest-only")
#: On PYTHONPATH, a collector's ``sitecustomize`` that turns its derivation off.
INGEST_ONLY = Path(__file__).resolve().parent / "ingest_only"


@contextlib.contextmanager
def collector(db: Path, log: IO[str], ingest_only: bool = False) -> Iterator[dict]:
    """``python -m otel_threads.collector`` on ``db`` with gRPC on a free port (with
    ``ingest_only``: no derivation, `INGEST_ONLY`), running; yields its holder note (its
    URLs), and stops it after (as Ctrl-C would: everything acknowledged on disk)."""
    before = os.environ.get("PYTHONPATH")
    if ingest_only:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(INGEST_ONLY), before) if p)
    try:
        proc, note = start_collector(db, log, "--grpc", "127.0.0.1:0")
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
    try:
        yield note
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextlib.contextmanager
def receiver(kind: str) -> Iterator[str]:
    """A ``parse`` server, or a ``collector`` (``ingest-only``: without derivation) on a
    new file, running; yields its gRPC target, and stops it after."""
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "parse":
            ready, stop = mp.Queue(), mp.Event()
            server = mp.get_context("fork").Process(target=_parse_server, args=(ready, stop))
            server.start()
            try:
                yield f"127.0.0.1:{ready.get(timeout=30)}"
            finally:
                stop.set()
                server.join(timeout=30)
            return
        with (
            (Path(tmp) / "collector.log").open("w") as log,
            collector(Path(tmp) / "c.duckdb", log, kind == "ingest-only") as note,
        ):
            yield note["grpc"].split("://")[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exporters", default="4,32", help="comma-separated counts")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured per receiver")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--processes", type=int, default=2, help="sender processes")
    ap.add_argument("--receivers", default=",".join(RECEIVERS), help="comma-separated")
    args = ap.parse_args()
    kinds = args.receivers.split(",")
    if unknown := set(kinds) - set(RECEIVERS):
        ap.error(f"unknown receivers {sorted(unknown)}: choose from {', '.join(RECEIVERS)}")
    print(f"{os.cpu_count()} CPUs; {args.seconds:g} s per receiver and round")
    row = "{:>9} {:>6} {:>11} {:>9} {:>11} {:>8}"
    print(row.format("exporters", "round", "receiver", "acked/s", "cores busy", "senders"))
    for exporters in (int(n) for n in args.exporters.split(",")):
        rates: dict[str, list[float]] = {kind: [] for kind in kinds}
        for r in range(args.rounds):
            for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                with receiver(kind) as target:
                    rate, busy, own = feed(target, exporters, args.processes, args.seconds)
                rates[kind].append(rate)
                print(
                    row.format(exporters, r + 1, kind, f"{rate:,.0f}", f"{busy:.2f}", f"{own:.2f}")
                )
        medians = {kind: statistics.median(rates[kind]) for kind in kinds}
        for kind, rate in medians.items():
            share = ""
            if kind != "parse" and "parse" in medians:
                share = f"  ({rate / medians['parse']:.0%} of parse-only)"
            print(row.format(exporters, "median", kind, f"{rate:,.0f}", "", "") + share)


if __name__ == "__main__":
    main()
