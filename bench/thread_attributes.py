"""What deriving the kept attribute values (derive_thread_attributes) costs per span.

    python bench/thread_attributes.py STORE.duckdb [--traces 16000] [--rounds 5]

Reads the spans of ``--traces`` traces that have a thread from STORE (read-only; e.g. a
store `bench/soak.py --dir` left), then runs this version's derive_thread_attributes
over them on one thread, ``--rounds`` times, and prints the median seconds and
microseconds per span. The view was ~15% of a refresh's time at the soak's load
(`bench/derive_profile.py`); compare versions by running this at each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import duckdb

from otel_threads.store.sqlfiles import sql_files


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--traces", type=int, default=16_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    con = duckdb.connect(args.store, read_only=True)
    con.execute("SET threads = 1")  # (as a refresh shares the machine with ingest)
    con.execute(
        "CREATE TEMP TABLE _traces AS SELECT DISTINCT trace_id FROM main.span_threads_mat "
        f"WHERE thread_id IS NOT NULL LIMIT {int(args.traces)}"
    )
    for table in ("spans_raw", "span_threads_mat"):
        con.execute(
            f"CREATE TEMP TABLE {table.removesuffix('_mat')} AS "
            f"SELECT * FROM main.{table} SEMI JOIN _traces USING (trace_id)"
        )
    spans = con.execute("SELECT count(*) FROM temp.spans_raw").fetchone()[0]
    view = sql_files().texts["derive_thread_attributes"]
    took = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        rows = con.execute(f"SELECT count(*) FROM ({view})").fetchone()[0]
        took.append(time.perf_counter() - started)
    median = statistics.median(took)
    print(
        f"{spans:,} spans of {args.traces:,} traces -> {rows:,} rows: median {median:.3f} s "
        f"({median / spans * 1e6:.1f} us/span; rounds {', '.join(f'{t:.3f}' for t in took)})"
    )


if __name__ == "__main__":
    main()
