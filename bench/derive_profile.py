"""Where a refresh's time goes: each statement of `Deriver.refresh`, timed and summed.

    python bench/derive_profile.py STORE.duckdb [--refreshes 3] [--top 30] [--limit N] [--widen W]
                                   [--collector] [--as-current]

Works on a copy of STORE (a store with traces queued for derivation, e.g. one that
`bench/soak.py --dir DIR` left behind when stopped while derivation lagged: kill the
soak, then its collector, and copy its file and WAL). Prints each refresh (traces
derived, seconds), then the statements that took the most time in all, with how many
times each ran (literals folded, so the same statement counts once).

``--collector`` gives the copy the collector's settings (one DuckDB thread, its default
memory limit, which sets how many chunks a refresh parses its LLM calls in).
``--as-current`` marks the copy's derived tables as derived by this version's SQL: a
store left by another version would otherwise be derived anew (every trace queued, and
each refresh a rebuild's); use it to compare versions whose SQL derives the same rows.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from otel_threads.store import derive
from otel_threads.store.derive import Deriver
from otel_threads.store.memory_budget import DEFAULT_MEMORY_LIMIT
from otel_threads.store.schema import connect
from otel_threads.store.sqlfiles import DERIVED, sql_files


class Timed:
    """A connection whose statements are timed, by their text without literals."""

    def __init__(self, con, totals: dict) -> None:
        self._con, self._totals = con, totals

    def execute(self, sql: str, *args):
        started = time.perf_counter()
        try:
            return self._con.execute(sql, *args)
        finally:
            key = re.sub(r"'[^']*'", "?", " ".join(sql.split()))[:110]
            entry = self._totals[key]
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--refreshes", type=int, default=3)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument(
        "--limit", type=int, default=None, help="traces a refresh takes (default: BATCH_TRACES)"
    )
    ap.add_argument("--widen", type=int, default=None, help="WIDEN (default: the module's)")
    ap.add_argument("--collector", action="store_true", help="the collector's DuckDB settings")
    ap.add_argument("--as-current", action="store_true", help="derived rows as this version's")
    ap.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="CHECKPOINT after every N refreshes, untimed (default 0: never, as a soak's "
        "collector would not between them)",
    )
    args = ap.parse_args()
    if args.widen is not None:
        derive.WIDEN = args.widen
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "profile.duckdb"
        shutil.copy(args.store, db)
        if Path(f"{args.store}.wal").exists():
            shutil.copy(f"{args.store}.wal", f"{db}.wal")
        if args.as_current:
            with duckdb.connect(str(db)) as plain:
                for table, view, _ in DERIVED:
                    plain.execute(
                        "UPDATE otel_threads_derived SET version = ? WHERE name = ?",
                        [sql_files().version(view), table],
                    )
        con = connect(str(db), derive_now=False)
        con.execute("SET checkpoint_threshold = '1TB'")
        if args.collector:
            con.execute("SET threads = 1")
            con.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}B'")
        totals: dict = collections.defaultdict(lambda: [0, 0.0])
        deriver = Deriver(Timed(con.cursor(), totals))
        print(f"queued: {deriver.pending():,} traces")
        total = 0.0
        for i in range(args.refreshes):
            started = time.perf_counter()
            n = deriver.refresh() if args.limit is None else deriver.refresh(args.limit)
            took = time.perf_counter() - started
            total += took
            print(f"refresh {i}: {n:,} traces in {took:.2f}s")
            if args.checkpoint_every and (i + 1) % args.checkpoint_every == 0:
                con.execute("CHECKPOINT")
        print(f"total {total:.2f}s")
        for key, (count, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1])[: args.top]:
            print(f"{seconds:7.3f}s {count:5d}  {key}")
        con.close()


if __name__ == "__main__":
    main()
