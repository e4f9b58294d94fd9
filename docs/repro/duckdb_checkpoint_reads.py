"""Which reads of DuckDB 2.0.1 wait while another connection checkpoints.

DuckDB lets most reads run beside a checkpoint, but a scan that filters a table with an
index (a WHERE on any of its columns, an index lookup, or the dynamic filter that ORDER
BY col ... LIMIT n pushes into its scan) waits until the checkpoint has ended, unless
a transaction begun before the newest commit is open when the checkpoint begins: then
it runs "concurrently" (without its vacuum) and holds no read. The collector
checkpoints every few seconds under sustained ingest, so such a read waited up to a
checkpoint's length. The threads list sorts by ``coalesce(col, col)`` instead of
``col`` (otel_threads.query.UNFILTERED_KEY): the same order, still a Top-N, and no
filter; and the store's checkpoints run beside a read transaction, its vacuum (once a
minute) alone just after one, with nothing else to write (otel_threads.store.checkpointing).

    python docs/repro/duckdb_checkpoint_reads.py

Each read runs 0.3 s into a checkpoint that DuckDB's debug setting keeps 1.5 s long and
prints how long it took. On 2.0.1: the filtered reads take about 1.2 s (the rest of the
checkpoint), the others a few milliseconds; the last two, beside a transaction begun
before the insert that the checkpoint writes, a few milliseconds too.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time

import duckdb

#: (what, statement, late materialization on, a transaction open beside the checkpoint)
READS = [
    ("no filter (sum of a column)", "SELECT sum(i) FROM t", True),
    ("filter on a column", "SELECT sum(i) FROM t WHERE i > 5", True),
    ("index lookup", "SELECT * FROM t WHERE k = 'k7'", True),
    ("ORDER BY i LIMIT 10", "SELECT i FROM t ORDER BY i DESC LIMIT 10", True),
    (
        "ORDER BY coalesce(i, i) LIMIT 10",
        "SELECT i FROM t ORDER BY coalesce(i, i) DESC LIMIT 10",
        True,
    ),
    ("the same, every column", "SELECT * FROM t ORDER BY coalesce(i, i) DESC LIMIT 10", True),
    (
        "the same, no late materialization",
        "SELECT * FROM t ORDER BY coalesce(i, i) DESC LIMIT 10",
        False,
    ),
    ("filter on a column, beside a transaction", "SELECT sum(i) FROM t WHERE i > 5", True, True),
    ("index lookup, beside a transaction", "SELECT * FROM t WHERE k = 'k7'", True, True),
]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(os.path.join(tmp, "t.duckdb"))
        con.execute("SET checkpoint_threshold = '1TB'")  # checkpoints only when asked
        con.execute("CREATE TABLE t (i BIGINT, k VARCHAR)")
        con.execute("CREATE INDEX t_k ON t (k)")
        con.execute("INSERT INTO t SELECT range, 'k' || (range % 1000) FROM range(300000)")
        con.execute("CHECKPOINT")
        con.execute("SET debug_checkpoint_scan_sleep_ms = 1500")
        for name, sql, late, *beside in READS:
            con.execute(f"SET GLOBAL late_materialization_max_rows = {50 if late else 0}")
            other = con.cursor()
            if beside:  # (DuckDB begins it on the file at its first read there)
                other.execute("BEGIN TRANSACTION READ ONLY")
                other.execute("SELECT 1 FROM t LIMIT 0").fetchall()
            # something for the checkpoint to write (after that transaction began)
            con.execute("INSERT INTO t SELECT range, 'k' || (range % 1000) FROM range(5000)")
            took: dict[str, float] = {}

            def checkpoint(took: dict[str, float] = took) -> None:
                started = time.perf_counter()
                con.execute("CHECKPOINT")
                took["checkpoint"] = time.perf_counter() - started

            thread = threading.Thread(target=checkpoint)
            thread.start()
            time.sleep(0.3)
            reader = con.cursor()
            started = time.perf_counter()
            reader.execute(sql).fetchall()
            read = time.perf_counter() - started
            thread.join()
            reader.close()
            other.close()
            print(
                f"{name:42s} {read * 1000:7.1f} ms (checkpoint {took['checkpoint'] * 1000:.0f} ms)"
            )
        con.close()


if __name__ == "__main__":
    main()
