"""Derivation side by side: how many queued traces a second one worker and several derive.

    python bench/derive_workers.py STORE.duckdb [--workers 1,2] [--seconds 20] [--rounds 2]

Works on a copy of STORE that has a backlog (e.g. a store `bench/soak.py --dir DIR` left
behind while derivation lagged), opened as the collector opens it (one DuckDB thread,
its memory limit), with its derived tables taken as this version's (a store of another
version would be derived anew). For each count of workers in turn, ``--rounds`` times
(alternated, on a fresh copy each time): the store derives with that many workers
for ``--seconds``; it prints the traces derived a second and the mean refresh, then
the median rate of each count over one worker's. Nothing else runs meanwhile: it
measures what the cores give derivation when ingest leaves them free (a rebuild after
an upgrade, a backlog worked off after a burst).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from reopen import collector_settings, copy_as_current

from otel_threads.store.store import Store


def run(src: str, workers: int, seconds: float) -> tuple[float, float]:
    """(traces derived a second, mean refresh seconds) of ``workers`` over ``seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        db = copy_as_current(src, Path(tmp) / "bench.duckdb")
        store = Store(
            str(db), on_open=collector_settings, derive_workers=workers, recycle_after_s=None
        )
        store.open()
        try:
            stats = store.refreshes
            while stats.seconds.count == 0:  # (from the first refresh's end)
                time.sleep(0.01)
            started, traces, count, busy = (
                time.perf_counter(),
                stats.traces,
                stats.seconds.count,
                stats.seconds.seconds_sum,
            )
            time.sleep(seconds)
            took = time.perf_counter() - started
            derived, refreshes = stats.traces - traces, stats.seconds.count - count
            mean = (stats.seconds.seconds_sum - busy) / max(1, refreshes)
            if store._derive is not None:
                store._derive.stop()  # (the backlog stays: no need to work it off)
        finally:
            store.close()
    return derived / took, mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--workers", default="1,2", help="comma-separated counts, one run each")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    rates: dict[int, list[float]] = {n: [] for n in counts}
    for r in range(args.rounds):
        for n in counts:
            rate, mean = run(args.store, n, args.seconds)
            rates[n].append(rate)
            print(
                f"round {r + 1}, {n} worker(s): {rate:,.0f} traces/s, mean refresh {mean:.2f} s",
                flush=True,
            )
    base = statistics.median(rates[counts[0]])
    for n in counts:
        median = statistics.median(rates[n])
        print(f"{n} worker(s): median {median:,.0f} traces/s, {median / base:.2f}x {counts[0]}")


if __name__ == "__main__":
    main()
