"""Do two connections committing side by side store more spans a second than one?

    python bench/parallel_commits.py [--commits 1000] [--requests 4] [--rounds 3]

The writer commits on one thread (otel_threads.store.writer), and with derivation off
it is what bounds the collector (`bench/ceiling.py`'s ``ingest-only``): is that thread
the bound, or DuckDB's commit path behind it? Here ``--commits`` transactions of the
soak's spans (``--requests`` requests of 512 from bench/conversations, decoded before
the clock starts) are committed into an empty store as the writer commits them
(``insert_batch`` between BEGIN and COMMIT, traces numbered, queued for derivation; a
CHECKPOINT whenever the WAL passes the writer's threshold), by one thread, then by two
threads each with a cursor of its own and half of the transactions. The two number
their traces from ranges of their own (the writer's numbering is one thread's: two
writers would have to share it). Printed per round: spans/s and the cores the process
used; then the medians and their ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time

import pyarrow as pa
from conversations import Conversations, request

from otel_threads.otlp.decode import decode_traces_protobuf
from otel_threads.store.insert import insert_batch
from otel_threads.store.schema import connect
from otel_threads.store.trace_numbers import SeenTraces
from otel_threads.store.writer import WAL_CHECKPOINT_BYTES

#: The second thread's trace numbers and ingest_seq start this far on.
_APART = 10**12


def run(batches: list[pa.Table], writers: int) -> tuple[float, float]:
    """Commit ``batches`` on ``writers`` threads into a new store: spans/s, cores used."""
    spans = sum(b.num_rows for b in batches)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.duckdb")
        con = connect(path, derive_now=False)
        con.execute("SET checkpoint_threshold = '1TB'")  # as the store sets it
        checkpointing = threading.Lock()
        failed: list[BaseException] = []

        def commit(i: int, mine: list[pa.Table]) -> None:
            try:
                cur = con.cursor()
                seen = SeenTraces(cur)
                seen.next_n += i * _APART
                seq = 1 + i * _APART
                for batch in mine:
                    cur.execute("BEGIN TRANSACTION")
                    insert_batch(cur, "spans", batch, seq, time.time_ns() // 1000, True, seen)
                    cur.execute("COMMIT")
                    seq += batch.num_rows
                    wal = os.path.getsize(path + ".wal")
                    if wal > WAL_CHECKPOINT_BYTES and checkpointing.acquire(blocking=False):
                        try:
                            cur.execute("CHECKPOINT")
                        finally:
                            checkpointing.release()
            except BaseException as exc:
                failed.append(exc)

        threads = [
            threading.Thread(target=commit, args=(i, batches[i::writers])) for i in range(writers)
        ]
        cpu, started = time.process_time(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        if failed:
            raise failed[0]
        ((stored,),) = con.execute("SELECT count(*) FROM spans_raw").fetchall()
        con.close()
    if stored != spans:
        raise AssertionError(f"stored {stored} spans of {spans}")
    return spans / took, cpu / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=4, help="of 512 spans, per commit")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    senders = [Conversations(random.getrandbits(40) + 10**6) for _ in range(args.requests)]
    batches = [
        pa.concat_tables(decode_traces_protobuf(request(s.next_turns()[0])).table for s in senders)
        for _ in range(args.commits)
    ]
    print(f"{os.cpu_count()} CPUs; {args.commits} commits of {batches[0].num_rows} spans")
    rates: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.rounds):
        for writers in (1, 2) if r % 2 == 0 else (2, 1):
            rate, cores = run(batches, writers)
            rates[writers].append(rate)
            print(f"round {r + 1}, {writers} writer(s): {rate:9,.0f} spans/s, {cores:.2f} cores")
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median: 1 writer {one:,.0f} spans/s, 2 writers {two:,.0f} ({two / one:.2f}x)")


if __name__ == "__main__":
    main()
