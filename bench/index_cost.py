"""What each table's indexes add to a checkpoint, on a copy of a store.

    python bench/index_cost.py STORE [--spans 30000] [--rounds 5]

A checkpoint writes each table's new rows and then its indexes (DuckDB's ART). DuckDB
writes an index's blocks that changed since the last checkpoint; new keys that are
random (trace ids, span ids, UUIDs) land all over the tree, so a few thousand of them
change most of its blocks, and the index is written about whole: a cost that follows
the size of the store, not the rows added. Keys that grow with time would land at one
edge (`bench/soak.py` sends random ids, as producers do, for this reason).

For each table that has an index, on a copy of ``STORE`` opened as the collector opens
it: as many rows as ``--spans`` spans bring to that table (in the store's proportion,
copied from its own rows, each trace or indexed turn id given a fresh random value and
each trace number the next one; thread ids are kept: new turns mostly join threads the
store has) are inserted and the
file checkpointed, ``--rounds`` times; then the same without the table's indexes.
Prints the median checkpoint of each (milliseconds), what the table's indexes held in
memory before it (MiB: DuckDB holds an index in memory from the first insert after a
checkpoint to the next, and with random keys about whole; docs/storage.md, "Index
memory"), what the checkpoint wrote with the indexes and without (MiB, as Linux counts
the process's writes), and the sums. Of a table kept in generations (``turn_keys``), the
newest, half full: the others are not written. The collector checkpoints every 32 MiB of
WAL, about 30,000 spans of the soak's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
from reopen import collector_settings, copy_as_current

from otel_threads.store import turn_keys
from otel_threads.store.memory_budget import INDEX_MEMORY_SQL
from otel_threads.store.schema import connect


def _fresh(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    """A new row's value of ``column``: a trace's number is the next one (numbers grow
    with time: otel_threads.store.trace_numbers), any other id a random one."""
    if column == "trace_n":
        top = con.execute(f"SELECT coalesce(max(trace_n), 0) FROM {table}").fetchall()[0][0]
        return f"{top} + row_number() OVER () AS trace_n"
    return f"md5(random()::VARCHAR) AS {column}"


def _written() -> float:
    """MiB this process has written so far (Linux's /proc/self/io; NaN elsewhere)."""
    try:
        with open("/proc/self/io") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return float("nan")


def _checkpoints(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: int, rounds: int
) -> tuple[float, float, float]:
    """Median ms of ``rounds`` checkpoints, each after ``rows`` rows into ``table``; the
    median MiB the indexes held in memory before each (a checkpoint frees them), and the
    median MiB each wrote."""
    took, held, wrote = [], [], []
    for _ in range(rounds):
        fresh = ", ".join(_fresh(con, table, c) for c in columns)
        con.execute(
            f"INSERT INTO {table} SELECT * REPLACE ({fresh}) FROM {table} USING SAMPLE {rows} ROWS"
        )
        held.append(con.execute(INDEX_MEMORY_SQL).fetchall()[0][0] / (1 << 20))
        before, started = _written(), time.perf_counter()
        con.execute("CHECKPOINT")
        took.append((time.perf_counter() - started) * 1000)
        wrote.append(_written() - before)
    return statistics.median(took), statistics.median(held), statistics.median(wrote)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--spans", type=int, default=30_000, help="spans' worth of rows a round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # (its derived tables marked as this version's: no rebuild queued into the figures)
        work = copy_as_current(args.store, Path(tmp) / "copy.duckdb")
        con = connect(str(work), derive_now=False)
        con.execute("SET checkpoint_threshold = '1TB'")  # as the collector: by hand
        collector_settings(con)
        # The turn keys are kept in generations (otel_threads.store.turn_keys): refreshes
        # add to the newest alone. The collector begins the next one at a checkpoint once
        # the newest is full (a migrated store's one generation holds every turn); here it
        # is half full, as on average, and the older ones are left out (never written).
        turn_keys.roll(con)
        *older, newest = turn_keys.TURN_KEYS.tables(con)
        ((half,),) = con.execute(
            f"SELECT {turn_keys.GENERATION // 2} - count(*) FROM {newest}"
        ).fetchall()
        if half > 0 and older:
            con.execute(
                f"INSERT INTO {newest} SELECT md5(random()::VARCHAR), thread_id "
                f"FROM (FROM turn_keys USING SAMPLE {half} ROWS)"
            )
        con.execute("CHECKPOINT")
        indexes: dict[str, list[tuple[str, str, str]]] = {}
        for table, name, columns, sql in con.execute(
            "SELECT table_name, index_name, expressions, sql FROM duckdb_indexes() "
            "WHERE database_name = current_database() ORDER BY table_name, index_name"
        ).fetchall():
            indexes.setdefault(table, []).append((name, columns.strip("[]"), sql))
        spans = con.execute("SELECT count(*) FROM spans_raw").fetchall()[0][0]
        print(f"{args.store}: {spans:,} spans; rows of {args.spans:,} spans a round")
        print(
            f"{'table':24}{'rows':>12}{'+rows':>8}{'indexed ms':>12}{'bare ms':>9}"
            f"{'index MiB':>11}{'wrote MiB':>11}{'bare MiB':>9}  indexes"
        )
        sums = [0.0] * 5
        for table, its in indexes.items():
            if table in older:
                continue
            # (the newest generation of turn keys takes rows as all of them would)
            counted = "turn_keys" if table == newest else table
            total = con.execute(f"SELECT count(*) FROM {counted}").fetchall()[0][0]
            if total == 0:
                continue
            rows = max(1, total * args.spans // max(1, spans))
            # (the indexed columns, and a new trace's random id where the table has one)
            described = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            columns = sorted({c for _, c, _ in its} | ({"trace_id"} & described))
            indexed, held, wrote = _checkpoints(con, table, columns, rows, args.rounds)
            for name, _, _ in its:
                con.execute(f"DROP INDEX {name}")
            con.execute("CHECKPOINT")
            bare, _, bare_wrote = _checkpoints(con, table, columns, rows, args.rounds)
            for _, _, sql in its:
                con.execute(sql)
            con.execute("CHECKPOINT")
            for i, value in enumerate((indexed, bare, held, wrote, bare_wrote)):
                sums[i] += value
            names = ", ".join(c for _, c, _ in its)
            print(
                f"{table:24}{total:>12,}{rows:>8,}{indexed:>12.1f}{bare:>9.1f}{held:>11.1f}"
                f"{wrote:>11.1f}{bare_wrote:>9.1f}  {names}"
            )
        print(
            f"{'all':24}{'':>20}{sums[0]:>12.1f}{sums[1]:>9.1f}{sums[2]:>11.1f}"
            f"{sums[3]:>11.1f}{sums[4]:>9.1f}"
        )
        con.close()


if __name__ == "__main__":
    main()
