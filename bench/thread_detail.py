"""`GET /threads/{id}` of a 100k-turn thread: a page against the whole thread.

    python bench/thread_detail.py [--path FILE] [--turns 100000] [--rounds 5]

Builds (once; reused while the file exists) a synthetic store (bench/synth.py) of
1,000 threads of 10 turns and one thread of ``--turns`` turns, 3 spans a turn, each
LLM call replaying the previous exchange, so the long thread's transcript has two
rows a turn. Starts a collector on it in a child process and prints, as the median
of ``--rounds`` runs, the time, answer bytes and the collector's RSS growth (its
peak resident memory during the run, over its resident memory before; reset between
runs through /proc/PID/clear_refs) of:
  - the first page: ``GET /threads/{id}`` (200 turns by default);
  - the change check: the same request with its ETag in If-None-Match (a 304);
  - the whole thread through the API: every page of 1,000 turns in turn
    (`ThreadsClient.thread`, what `otel-threads show` does);
  - the whole thread as one answer, as `GET /threads/{id}` answered before paging:
    `query_thread` and its JSON, in a child process of its own on a copy of the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import build

THREAD = "long-000000"
SERVE = """
import sys, time
from otel_threads.collector import Collector, Config
c = Collector(Config(parse_workers=0,
                     db=sys.argv[1], grpc=("127.0.0.1", 0), http=None, api=("127.0.0.1", 0)))
print(c.start().api, flush=True)
while True:
    time.sleep(60)
"""
WHOLE = """
import json, sys, time
from otel_threads.json_out import dumps
from otel_threads.query import query_thread
from otel_threads.store import connect

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024

con = connect(sys.argv[1], read_only=True)
query_thread(con, "long-000000", None).thread  # warm: the same caches as the server
out = []
for _ in range(int(sys.argv[2])):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss("VmRSS")
    started = time.perf_counter()
    body = dumps(query_thread(con, sys.argv[3])).encode()
    took = time.perf_counter() - started
    out.append([took, len(body), rss("VmHWM") - before])
    del body
print(json.dumps(out))
"""


def rss(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def get(url: str, etag: str | None = None) -> tuple[int, bytes, str | None]:
    req = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.status, resp.read(), resp.headers.get("ETag")
    except urllib.error.HTTPError as err:
        if err.code == 304:
            return 304, err.read(), err.headers.get("ETag")
        raise


def measured(pid: int, fn, rounds: int) -> tuple[float, int, int]:
    """Median (seconds, answer bytes, RSS growth) of ``fn`` -> bytes."""
    fn()  # warm
    runs = []
    for _ in range(rounds):
        reset_peak(pid)
        before = rss(pid, "VmRSS")
        started = time.perf_counter()
        size = fn()
        runs.append((time.perf_counter() - started, size, rss(pid, "VmHWM") - before))
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))  # type: ignore[return-value]


def line(name: str, secs: float, size: float, grow: float) -> str:
    return (
        f"{name:<44} {secs * 1000:9.1f} ms  {size / 2**20:9.2f} MiB  RSS +{grow / 2**20:7.1f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--path", default=os.path.join(tempfile.gettempdir(), "otel-threads-bench-thread.duckdb")
    )
    ap.add_argument("--turns", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    path = Path(args.path)
    if not path.exists():
        secs = build(str(path), 1000, 10, 3, long_turns=args.turns, replay=1)
        print(
            f"built 1,000 threads x 10 turns + 1 thread x {args.turns:,} turns "
            f"(3 spans a turn) in {secs:.0f}s"
        )
    from otel_threads import ThreadsClient

    served = Path(tempfile.mkdtemp()) / "served.duckdb"  # the collector holds its copy
    shutil.copy(path, served)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(served)], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        api = proc.stdout.readline().strip()
        url = f"{api}/threads/{THREAD}"
        _, body, tag = get(url)
        page = json.loads(body)["page"]
        print(
            f"thread {THREAD}: {page['turns_total']:,} turns, "
            f"{page['transcript_total']:,} transcript rows (median of {args.rounds} runs)"
        )
        print(
            line(
                "GET /threads/{id} (first page, 200 turns)",
                *measured(proc.pid, lambda: len(get(url)[1]), args.rounds),
            )
        )
        print(
            line(
                "  again with If-None-Match (304)",
                *measured(proc.pid, lambda: len(get(url, tag)[1]), args.rounds),
            )
        )
        sizes: list[int] = []

        def whole_paged() -> int:
            client = ThreadsClient(api)

            def counted(method, path_, body=None):
                req = urllib.request.Request(api + path_)
                with urllib.request.urlopen(req, timeout=600) as resp:
                    data = resp.read()
                sizes.append(len(data))
                return json.loads(data)

            client._request = counted  # type: ignore[method-assign]
            start = len(sizes)
            detail = client.thread(THREAD)
            assert len(detail.turns) == page["turns_total"], len(detail.turns)
            return sum(sizes[start:])

        print(
            line(
                "whole thread, paged (1,000 turns a request)",
                *measured(proc.pid, whole_paged, args.rounds),
            )
        )
    finally:
        proc.terminate()
        proc.wait(30)
    out = subprocess.run(
        [sys.executable, "-c", WHOLE, str(served), str(args.rounds), THREAD],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    runs = json.loads(out.stdout)
    print(
        line(
            "whole thread as one answer (before paging)",
            *(statistics.median(r[i] for r in runs) for i in range(3)),
        )
    )
    shutil.rmtree(served.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
