"""Why and how the collector opens its store again (docs/storage.md, "Opened again").

    python bench/reopen.py STORE.duckdb [--refreshes 100] [--every 20] [--rounds 2]
                           [--reopens 8] [--derive-s 5]

Works on copies of STORE: a store with traces queued for derivation (as for
bench/derive_profile.py: one that `bench/soak.py --dir DIR` left behind when stopped
while derivation lagged), its derived tables marked as this version's SQL's.

1. Drift: ``--refreshes`` refreshes of 1,024 queued traces each, one after another in
   one process with the collector's DuckDB settings, on a copy kept open and on a copy
   closed and opened again every ``--every`` refreshes; each in a process of its own,
   alternated for ``--rounds`` rounds. Prints the median refresh of each ten, for both.
2. The reopen: a `Store` and its `Writer` on another copy (the collector's settings),
   derivation working off the backlog and two threads reading (the threads list, a
   thread's turns) without a pause; the store is opened again after each
   ``--derive-s`` seconds of derivation, ``--reopens`` times. Prints each reopen's
   length (commits wait for all of it) and how long reads were held, and the reads'
   latency p50/p99/max meanwhile.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from otel_threads.store import derive
from otel_threads.store.derive import Deriver
from otel_threads.store.memory_budget import DEFAULT_MEMORY_LIMIT
from otel_threads.store.schema import connect
from otel_threads.store.sqlfiles import DERIVED, sql_files
from otel_threads.store.store import Store
from otel_threads.store.writer import Writer

BATCH = 1024


def copy_as_current(store: str, to: Path) -> Path:
    """A copy of ``store`` (and its WAL) whose derived tables count as this version's."""
    shutil.copy(store, to)
    if Path(f"{store}.wal").exists():
        shutil.copy(f"{store}.wal", f"{to}.wal")
    with duckdb.connect(str(to)) as plain:
        for table, view, _ in DERIVED:
            plain.execute(
                "UPDATE otel_threads_derived SET version = ? WHERE name = ?",
                [sql_files().version(view), table],
            )
    return to


def collector_settings(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET threads = 1")
    con.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}B'")


class Opened:
    """A copy with its own connection and deriver; `reopen` closes and opens it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con = self.deriver = None
        self.reopen()

    def reopen(self) -> None:
        if self.con is not None:
            self.con.close()
        self.con = connect(str(self.path), derive_now=False)
        self.con.execute("SET checkpoint_threshold = '1TB'")
        collector_settings(self.con)
        self.deriver = Deriver(self.con.cursor())

    def refresh(self) -> float:
        started = time.perf_counter()
        self.deriver.refresh(BATCH)
        return time.perf_counter() - started


def derive_run(store: str, tmp: Path, refreshes: int, every: int) -> list[float]:
    """Refresh times, in this process, on a copy of ``store`` opened again every
    ``every`` refreshes (0: kept open)."""
    derive.WIDEN = 1  # batches of the oldest queued traces alone: the same size each time
    opened = Opened(copy_as_current(store, tmp / "drift.duckdb"))
    times = []
    for i in range(refreshes):
        if every and i and i % every == 0:
            opened.reopen()
        times.append(opened.refresh())
    opened.con.close()
    return times


def drift(store: str, refreshes: int, every: int, rounds: int) -> None:
    """`derive_run` kept open and opened again, each in a process of its own (a second
    database in the same process would keep what the first one's reopen lets go),
    alternated for ``rounds`` rounds."""
    names = {0: "kept open", every: f"opened again every {every}"}
    times: dict[int, list[list[float]]] = {0: [], every: []}
    for _ in range(rounds):
        for mode in times:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    store,
                    "--child",
                    str(mode),
                    "--refreshes",
                    str(refreshes),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            times[mode].append(json.loads(out.splitlines()[-1]))
    print(f"refreshes of {BATCH:,} traces, median of each ten over {rounds} rounds (s):")
    for mode, runs in times.items():
        meds = [
            statistics.median(x for run in runs for x in run[i : i + 10])
            for i in range(0, refreshes, 10)
        ]
        print(f"  {names[mode]:>22}: {' '.join(f'{m:.2f}' for m in meds)}")


class Reopens(logging.Handler):
    """The store's log lines of each reopen: (derivation s, total s, reads held s, of
    which waiting for the reads under way s)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[float, float, float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            print(record.getMessage(), record.exc_info[1] if record.exc_info else "")
        if record.msg.startswith("opened the store again"):
            self.seen.append(record.args)


def reopens(store: str, tmp: Path, count: int, derive_s: float) -> None:
    derive.WIDEN = 1  # refreshes of the soak's size (~1,000 traces), not the whole backlog
    path = copy_as_current(store, tmp / "store.duckdb")
    seen = Reopens()
    log = logging.getLogger("otel_threads.store.writer")
    log.addHandler(seen)
    log.setLevel(logging.DEBUG)
    s = Store(str(path), on_open=collector_settings, recycle_after_s=derive_s)
    writer = Writer(s).start()
    with s.cursor() as cur:
        thread_id = cur.execute(
            "SELECT thread_id FROM threads ORDER BY turn_count DESC LIMIT 1"
        ).fetchall()[0][0]
    lat: list[float] = []
    stop = threading.Event()

    def read(sql: str, params: list) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            with s.cursor() as cur:
                cur.execute(sql, params).fetchall()
            lat.append(time.perf_counter() - started)
            time.sleep(0.01)

    readers = [
        threading.Thread(
            target=read,
            args=("SELECT thread_id, turn_count FROM threads ORDER BY thread_id LIMIT 50", []),
        ),
        threading.Thread(
            target=read, args=("SELECT * FROM turns WHERE thread_id = ? LIMIT 100", [thread_id])
        ),
    ]
    for r in readers:
        r.start()
    try:
        while len(seen.seen) < count:
            time.sleep(0.5)
            if s.derive_health()[0] == 0:
                break  # the backlog is derived: no more reopens come
    finally:
        stop.set()
        for r in readers:
            r.join()
        writer.close()
        s.close()
    count = len(seen.seen)
    print(f"the store opened again {count} times, after each {derive_s:g}s of derivation:")
    for _, total, held, under_way in seen.seen:
        print(f"  {total:.2f}s in all, reads held {held:.3f}s ({under_way:.3f}s: reads under way)")
    totals = [t for _, t, _, _ in seen.seen]
    helds = [h for _, _, h, _ in seen.seen]
    print(
        f"median {statistics.median(totals):.2f}s in all, reads held "
        f"{statistics.median(helds):.3f}s; reads meanwhile ({len(lat):,}): p50 "
        f"{statistics.median(lat) * 1e3:.0f} ms, p99 "
        f"{statistics.quantiles(lat, n=100)[98] * 1e3:.0f} ms, max {max(lat) * 1e3:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--refreshes", type=int, default=100)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reopens", type=int, default=8)
    ap.add_argument("--derive-s", type=float, default=5.0)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:  # one run of `drift`: its times as JSON
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(derive_run(args.store, Path(tmp), args.refreshes, args.child)))
        return
    if args.refreshes:
        drift(args.store, args.refreshes, args.every, args.rounds)
    if args.reopens:
        with tempfile.TemporaryDirectory() as tmp:
            reopens(args.store, Path(tmp), args.reopens, args.derive_s)


if __name__ == "__main__":
    main()
