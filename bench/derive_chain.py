"""Resolving a long loop of previous_turn_id links: this tree against another, same run.

    python bench/derive_chain.py [--turns 30000] [--rounds 3] [--compare REV]

Stores a chain of ``--turns`` linked turns without a thread id, each its own trace, the
first naming the last (a loop: bad data, which no turn of a thread ever resolves), and
derives it. Then, ``--rounds`` times, a late turn arrives that names a turn of the loop,
and one refresh derives it: the resolution that used to walk the chain one SQL round
trip per link, on every arrival. Prints, per tree, the median time of that refresh and
the time to derive the whole stored chain, then their ratio.

``--compare`` names a git revision (default ``main``) whose ``otel_threads`` is exported
to a temporary directory and run in its own process, alternating with this tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_790_000_000 * 10**9


def _kv(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _request(spans: list[dict]) -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_kv("service.name", "chain")]},
                    "scopeSpans": [{"spans": spans}],
                }
            ]
        }
    ).encode()


def _turn(n: int, previous: int, start: int) -> dict:
    return {
        "traceId": format(n, "032x"),
        "spanId": format(n, "016x"),
        "name": "turn",
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000),
        "attributes": [
            _kv("otel_threads.is_turn", True),
            _kv("otel_threads.previous_turn_id", format(previous, "016x")),
        ],
    }


def worker(turns: int, rounds: int) -> dict:
    """In a process whose otel_threads is the tree under test."""
    from otel_threads.otlp.decode import decode_traces_json
    from otel_threads.store import connect
    from otel_threads.store.derive import Deriver
    from otel_threads.store.insert import insert_batch

    con = connect(os.path.join(tempfile.mkdtemp(prefix="derive-chain-"), "c.duckdb"))
    seq = 1

    def insert(spans: list[dict]) -> None:
        nonlocal seq
        con.execute("BEGIN TRANSACTION")
        seq += insert_batch(con, "spans", decode_traces_json(_request(spans)).table, seq, 0, True)
        con.execute("COMMIT")

    chain = [_turn(i + 1, (i - 1) % turns + 1, T0 + i * 1000) for i in range(turns)]
    for i in range(0, turns, 5000):
        insert(chain[i : i + 5000])
    deriver = Deriver(con)
    started = time.perf_counter()
    while deriver.refresh():
        pass
    whole = time.perf_counter() - started
    arrivals = []
    for r in range(rounds):
        late = 10**9 + r
        insert([_turn(late, 1 + (7919 * (r + 1)) % turns, T0 - 10**9)])
        started = time.perf_counter()
        while deriver.refresh():
            pass
        arrivals.append(time.perf_counter() - started)
    unthreaded = con.execute(
        "SELECT count(*) FROM span_threads WHERE thread_id IS NULL"
    ).fetchall()[0][0]
    assert unthreaded == turns + rounds, unthreaded
    con.close()
    return {"whole": whole, "arrivals": arrivals}


def run(tree: Path, turns: int, rounds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, "--worker", "--turns", str(turns), "--rounds", str(rounds)],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"the run from {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", default="main", help="a git revision to run against")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.turns, args.rounds)))
        return
    other = Path(tempfile.mkdtemp(prefix="derive-chain-tree-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", args.compare, "otel_threads"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(other)], input=archive, check=True)
    trees = {"this": ROOT, args.compare: other}
    results = {}
    for name, tree in trees.items():
        results[name] = run(tree, args.turns, args.rounds)
        arrivals = results[name]["arrivals"]
        print(
            f"{name:8s} a late turn behind a loop of {args.turns} links: refresh "
            + ", ".join(f"{a:.2f}s" for a in arrivals)
            + f" (median {statistics.median(arrivals):.2f}s); deriving the stored loop "
            f"{results[name]['whole']:.2f}s",
            flush=True,
        )
    this, old = (statistics.median(results[n]["arrivals"]) for n in trees)
    print(
        f"median refresh for a late turn: {old:.2f}s ({args.compare}) -> {this:.2f}s "
        f"(this tree), {old / this:.0f}x faster"
    )


if __name__ == "__main__":
    main()
