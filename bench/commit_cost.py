"""Where a commit of the writer goes: its statements, timed one by one, on a copy of a store.

    python bench/commit_cost.py STORE [--requests 2] [--commits 300] [--rounds 2]

Each commit is what the writer commits under the soak (bench/soak.py): ``--requests``
OTLP requests of 512 spans (128 new traces each, random ids, from bench/conversations),
decoded as the receivers decode them, inserted by the writer's `insert_batch` inside
BEGIN ... COMMIT, queued for derivation; a CHECKPOINT whenever the WAL passes the
writer's threshold. Two ways are measured in turns, each on a fresh copy of STORE:
``filter``, the writer's (the Bloom filter of numbered traces, `SeenTraces`: only the
ids it may have seen are looked up) and ``lookup`` (every id of the batch looked up
through `trace_numbers`' key). Printed per way and round: the median commit (BEGIN to
COMMIT, without checkpoints), then per statement its mean ms per commit and median;
the first tenth of the commits is left out (warming up).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import tempfile
import time

import duckdb
import pyarrow as pa
from conversations import Conversations, request

from otel_threads.otlp.decode import decode_traces_protobuf
from otel_threads.store.insert import insert_batch
from otel_threads.store.schema import connect
from otel_threads.store.trace_numbers import SeenTraces
from otel_threads.store.writer import WAL_CHECKPOINT_BYTES


class Timed:
    """A connection whose statements are timed, by their first words."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.times = con, {}

    def execute(self, sql: str, *args):
        started = time.perf_counter()
        result = self.con.execute(sql, *args)
        key = re.sub(r"\s+", " ", sql.strip())[:64]
        self.times.setdefault(key, []).append((time.perf_counter() - started) * 1000)
        return result

    def from_arrow(self, table: pa.Table) -> TimedRelation:
        return TimedRelation(self, self.con.from_arrow(table))

    def __getattr__(self, name: str):
        return getattr(self.con, name)


class TimedRelation:
    """A relation of Arrow rows whose insert is timed (the writer inserts most rows so)."""

    def __init__(self, timed: Timed, relation: duckdb.DuckDBPyRelation) -> None:
        self.timed, self.relation = timed, relation

    def insert_into(self, name: str) -> None:
        started = time.perf_counter()
        self.relation.insert_into(name)
        key = f"INSERT INTO {name} (Arrow rows)"
        self.timed.times.setdefault(key, []).append((time.perf_counter() - started) * 1000)


def run(store: str, way: str, requests: int, commits: int) -> tuple[float, dict[str, list]]:
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(store))) as tmp:
        path = os.path.join(tmp, "copy.duckdb")
        shutil.copy(store, path)
        if os.path.exists(store + ".wal"):
            shutil.copy(store + ".wal", path + ".wal")
        # (opened as the collector opens it: migrated, row groups of the store's size)
        con = connect(path, derive_now=False)
        con.execute("SET checkpoint_threshold = '1TB'")  # as the store sets it
        timed = Timed(con)
        seen = SeenTraces(con) if way == "filter" else None
        ((seq,),) = con.execute("SELECT coalesce(max(ingest_seq), 0) FROM spans_raw").fetchall()
        # (prefixes no sender of bench/soak.py uses: the traces are new to its stores)
        senders = [Conversations(random.getrandbits(40) + 10**6) for _ in range(requests)]
        took = []
        for _ in range(commits):
            batch = pa.concat_tables(
                decode_traces_protobuf(request(s.next_turns()[0])).table for s in senders
            )
            started = time.perf_counter()
            timed.execute("BEGIN TRANSACTION")
            insert_batch(timed, "spans", batch, seq + 1, time.time_ns() // 1000, True, seen)
            timed.execute("COMMIT")
            took.append((time.perf_counter() - started) * 1000)
            seq += batch.num_rows
            if os.path.getsize(path + ".wal") > WAL_CHECKPOINT_BYTES:
                timed.execute("CHECKPOINT")
        con.close()
    skip = commits // 10
    times = {k: v[skip:] if len(v) > 2 * skip else v for k, v in timed.times.items()}
    return statistics.median(took[skip:]), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counted = args.commits - args.commits // 10
    for r in range(args.rounds):
        for way in ("filter", "lookup"):
            median, times = run(args.store, way, args.requests, args.commits)
            print(f"round {r + 1}, {way}: commit of {512 * args.requests} spans {median:.2f} ms")
            for key, values in sorted(times.items(), key=lambda kv: -sum(kv[1])):
                mean, median = sum(values) / counted, statistics.median(values)
                print(f"  {mean:7.2f} ms/commit  median {median:7.2f}  n={len(values):4}  {key}")


if __name__ == "__main__":
    main()
