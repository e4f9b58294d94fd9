"""Reading a 100,000-turn thread over the API: the first page, a revalidation (304),
and the whole thread through ThreadsClient (page after page).

    python bench/thread_detail.py [--turns 100000] [--rounds 5]

Builds a store (bench/synth.py: 1,000 threads of 10 turns and one of --turns turns,
--spans spans a turn), starts a collector on it in this process, and prints the median time,
answer bytes and growth of this process's RSS for each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import build

from collector import Collector, Config
from otel_threads.client import ThreadsClient


def rss_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def get(url: str, etag: str | None = None) -> tuple[int, int, str]:
    req = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, len(resp.read()), resp.headers.get("ETag")
    except urllib.error.HTTPError as err:
        return err.code, len(err.read()), err.headers.get("ETag")


def measure(label: str, fn, rounds: int) -> None:
    times, before = [], rss_mib()
    out = None
    for _ in range(rounds):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    print(f"{label:44s} {statistics.median(times) * 1000:9.1f} ms  {out}  "
          f"RSS +{rss_mib() - before} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--spans", type=int, default=1,
                    help="spans a turn (past 1, one is an LLM call replaying the whole "
                         "history: quadratic in a long thread)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "detail.duckdb")
        secs = build(path, 1_000, 10, args.spans, long_turns=args.turns)
        print(f"built the store in {secs:.0f}s")
        collector = Collector(Config(db=path, grpc=None, http=("127.0.0.1", 0),
                                     api=("127.0.0.1", 0)))
        collector.start()
        try:
            url = f"{collector.endpoints.api}/threads/long-000000"
            status, _, etag = get(url)
            assert status == 200, status
            measure("GET first page (default page)", lambda: f"{get(url)[1]:,} bytes",
                    args.rounds)
            measure("GET again, If-None-Match (304)",
                    lambda: f"{get(url, etag)[0]} {get(url, etag)[1]} bytes", args.rounds)
            client = ThreadsClient(collector.endpoints.api)
            measure(f"ThreadsClient.thread: all {args.turns:,} turns",
                    lambda: f"{len(client.thread('long-000000').turns):,} turns",
                    max(1, args.rounds // 2))
        finally:
            collector.stop()


if __name__ == "__main__":
    main()
