"""Query latency on a large store: the threads list, one thread's detail, a transcript.

    python bench/query.py [--path FILE] [--threads 100000] [--rounds 20]

Builds (once; reused while the file exists) a synthetic store of 10M spans, 1M
turns and 100k threads with 10% LLM spans carrying semconv messages (see
bench/synth.py), then prints the median over ``--rounds`` of:
  - the top-50 threads by last_updated (target <= 100 ms);
  - `ThreadsClient.thread(id)`: the thread row, its turns and its transcript
    (target <= 20 ms);
  - the transcript of one thread alone;
  - every span of one thread (`spans WHERE thread_id = ?`), and of one trace.
Queries go through the same code as the CLI and API (otel_threads.query) on a
read-only connection, picking a different random thread each round.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import build

from otel_threads.query import ThreadsQueryReq, query_thread, query_threads
from otel_threads.store import connect


def median_ms(fn, rounds: int) -> float:
    fn()  # warm
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--path", default=os.path.join(tempfile.gettempdir(), "otel-threads-bench-query.duckdb")
    )
    ap.add_argument("--threads", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument(
        "--as-is",
        action="store_true",
        help="query the store as it is: no migration, no re-derivation (its derived rows "
        "and views may be an older version's; re-deriving 10M spans takes half an hour)",
    )
    args = ap.parse_args()

    path = Path(args.path)
    if args.rebuild or not path.exists():
        for stale in (path, Path(f"{path}.wal")):
            stale.unlink(missing_ok=True)
        secs = build(str(path), args.threads, 10, 10)
        print(
            f"built {args.threads * 100:,} spans in {secs:.0f}s "
            "(generation plus deriving threads, turns and transcripts from scratch)"
        )
    elif not args.as_is:  # a store built by an earlier version: migrate it, re-derive
        started = time.perf_counter()
        connect(str(path)).close()
        took = time.perf_counter() - started
        if took > 1:
            print(f"upgraded the store in {took:.0f}s (migrations, re-deriving stale tables)")
    con = duckdb.connect(str(path), read_only=True)
    spans, turns, threads = con.execute(
        "SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM turns), "
        "(SELECT count(*) FROM threads)"
    ).fetchall()[0]
    print(f"store: {spans:,} spans, {turns:,} turns, {threads:,} threads ({path})")
    ids = [r[0] for r in con.execute("SELECT thread_id FROM threads").fetchall()]
    rnd = random.Random(1)

    top = median_ms(lambda: query_threads(con, ThreadsQueryReq(limit=50)), args.rounds)
    detail = median_ms(lambda: query_thread(con, rnd.choice(ids)), args.rounds)
    transcript = median_ms(
        lambda: con.execute(
            "SELECT * FROM transcript WHERE thread_id = ? ORDER BY seq", [rnd.choice(ids)]
        ).fetchall(),
        args.rounds,
    )
    thread_spans = median_ms(
        lambda: con.execute(
            "SELECT * FROM spans WHERE thread_id = ?", [rnd.choice(ids)]
        ).fetchall(),
        args.rounds,
    )
    traces = [
        r[0] for r in con.execute("SELECT trace_id FROM turns USING SAMPLE 1000 ROWS").fetchall()
    ]
    trace_spans = median_ms(
        lambda: con.execute(
            "SELECT * FROM spans WHERE trace_id = ?", [rnd.choice(traces)]
        ).fetchall(),
        args.rounds,
    )
    print(f"top-50 threads by last_updated  {top:7.1f} ms   (target <= 100 ms)")
    print(f"thread(id) detail               {detail:7.1f} ms   (target <= 20 ms)")
    print(f"one thread's transcript         {transcript:7.1f} ms")
    print(f"spans WHERE thread_id = ?       {thread_spans:7.1f} ms   (every span of a thread)")
    print(f"spans WHERE trace_id = ?        {trace_spans:7.1f} ms   (one turn's span tree)")
    filters(con, args.rounds)


#: (what, the filter, target ms): each measured as the web page and the CLI ask, the
#: first 50 threads by last_updated with the total that match. The synthetic store's
#: threads: user-N on every turn (5,000 users), app.version and db.system on every
#: thread, one turn in 97 failed, LLM calls of gpt-4o-mini, no tools.
FILTERS = [
    ("text, common (every thread)", {"text": "answer"}, 300),
    ("text, rare (one thread)", {"text": "Question 7 of thread 4242"}, 300),
    ("text, none", {"text": "refund"}, 300),
    ("text by role user", {"text": "question 3 ", "role": "user"}, 300),
    ("has_error", {"has_error": True}, 100),
    ("tool (none)", {"tool": "lookup_order"}, 100),
    ("model gpt-4o*", {"model": "gpt-4o*"}, 100),
    ("user_id (1 in 5,000)", {"user_id": "user-42"}, 100),
    ("project", {"project": "bench"}, 100),
    ("service_name", {"service_name": "bench-app"}, 100),
    ("min_turns 5", {"min_turns": 5}, 100),
    ("min_cost_usd", {"min_cost_usd": 0.0001}, 100),
    ("attribute, every thread", {"attributes": {"app.version": "1.4.2"}}, 100),
    ("attribute, 1 in 5,000", {"attributes": {"user.id": "user-42"}}, 100),
    (
        "three together",
        {"has_error": True, "model": "gpt*", "attributes": {"db.system": "postgresql"}},
        100,
    ),
]


def filters(con: duckdb.DuckDBPyConnection, rounds: int) -> None:
    """The threads filters (`ThreadFilter`), the first 50 matches and their total."""
    print("\nfilters (first 50 by last_updated, and the total that match):")
    for what, given, target in FILTERS:
        req = ThreadsQueryReq(limit=50, filter=given)
        total = query_threads(con, req).total
        ms = median_ms(lambda req=req: query_threads(con, req), rounds)
        print(f"  {what:32s} {ms:7.1f} ms  (target <= {target} ms)  {total:>7,} threads")


if __name__ == "__main__":
    main()
