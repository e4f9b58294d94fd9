"""How long a checkpoint holds the readers, by the row-group size of the store's file.

    python bench/checkpoint.py [--threads 5000] [--seconds 40] [--sizes 122880,16384]

A DuckDB checkpoint (the WAL folded into the file) holds every read that filters a
table (a WHERE, an index lookup) until it has written that table, even one inside a
transaction begun before it (docs/repro/duckdb_checkpoint_reads.py). The collector
checkpoints whenever its WAL passes 32 MiB, so such a read that meets a checkpoint waits
about as long as the checkpoint runs. This builds one synthetic store (bench/synth.py),
then, for each row-group size in turn (the same seed file, copied), appends commits of
``--batch`` spans copied from the store's own, checkpointing after every
``--checkpoint-rows``, under the collector's memory limit, while a reader runs the page
of the thread with the most turns (the API's query, filtered by thread) every 20 ms.
``--seed STORE`` starts from a copy of a real store instead (e.g. one `bench/soak.py
--dir` left). It prints, per size: spans appended/s, checkpoint ms (median and max) and
seconds spent checkpointing per 100k spans, the reader's latency p50/p99/max, and bytes
per span appended. Rounds alternate the sizes (``--rounds``);
the figures are the medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time

from synth import build

from otel_threads.paging import query_thread_page
from otel_threads.store import connect


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else float("nan")


def one_round(
    seed: str, work: str, size: int, seconds: float, every_rows: int, memory_limit: str, batch: int
) -> dict:
    for suffix in ("", ".wal"):
        if os.path.exists(seed + suffix):
            shutil.copyfile(seed + suffix, work + suffix)
    con = connect(work, row_group_size=size)
    con.execute("SET checkpoint_threshold = '1TB'")  # as the collector: checkpoints by hand
    con.execute(f"SET memory_limit = '{memory_limit}'")
    base_bytes = os.path.getsize(work)
    seed_rows = con.execute("SELECT max(rowid) + 1 FROM spans_raw").fetchall()[0][0]
    reads: list[float] = []
    stop = threading.Event()
    # (fetchall: a fetchone() would leave a read open, and DuckDB would checkpoint beside it)
    ((longest,),) = con.execute(
        "SELECT thread_id FROM threads ORDER BY turn_count DESC, thread_id LIMIT 1"
    ).fetchall()

    def reader() -> None:
        cur = con.cursor()
        while not stop.is_set():
            t = time.perf_counter()
            query_thread_page(cur, longest)
            reads.append(time.perf_counter() - t)
            time.sleep(0.02)
        cur.close()

    th = threading.Thread(target=reader)
    th.start()
    w = con.cursor()
    checkpoints: list[float] = []
    appended = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        first = appended % (seed_rows - batch)
        w.execute(
            "INSERT INTO spans_raw SELECT * FROM spans_raw WHERE rowid BETWEEN ? AND ?",
            [first, first + batch - 1],
        )
        appended += batch
        last = time.perf_counter() - started >= seconds
        if appended % every_rows == 0 or last:  # the last one too: at least one each round
            t = time.perf_counter()
            w.execute("CHECKPOINT")
            checkpoints.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    stop.set()
    th.join()
    w.close()
    con.close()
    return {
        "spans/s": appended / elapsed,
        "ckpt p50 ms": statistics.median(checkpoints) * 1e3,
        "ckpt max ms": max(checkpoints) * 1e3,
        "ckpt s/100k": sum(checkpoints) / appended * 1e5,
        "read p50 ms": _pct(reads, 0.5) * 1e3,
        "read p99 ms": _pct(reads, 0.99) * 1e3,
        "read max ms": max(reads) * 1e3,
        "B/span": (os.path.getsize(work) - base_bytes) / appended,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=5_000, help="seed store: threads of 10x10")
    ap.add_argument("--seconds", type=float, default=40.0, help="per round and size")
    ap.add_argument("--sizes", default="122880,16384", help="row-group sizes, comma-separated")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--checkpoint-rows", type=int, default=32_768)
    ap.add_argument("--batch", type=int, default=4_096, help="spans a commit")
    ap.add_argument("--memory-limit", default="512MiB", help="DuckDB's, as the collector's")
    ap.add_argument("--seed", help="start from a copy of this store instead (not changed)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        seed = args.seed or os.path.join(tmp, "seed.duckdb")
        if not args.seed:
            secs = build(seed, args.threads, 10, 10)
            print(f"seed store: {args.threads * 100:,} spans, built in {secs:.0f}s", flush=True)
        results: dict[int, list[dict]] = {s: [] for s in sizes}
        for r in range(args.rounds):
            for size in sizes:
                work = os.path.join(tmp, f"work-{size}.duckdb")
                res = one_round(
                    seed,
                    work,
                    size,
                    args.seconds,
                    args.checkpoint_rows,
                    args.memory_limit,
                    args.batch,
                )
                results[size].append(res)
                print(
                    f"round {r + 1}, row groups of {size:,}: "
                    + ", ".join(f"{k} {v:,.1f}" for k, v in res.items()),
                    flush=True,
                )
                for suffix in ("", ".wal"):
                    if os.path.exists(work + suffix):
                        os.remove(work + suffix)
    keys = list(results[sizes[0]][0])
    print("\nmedians over rounds")
    print(f"{'row group':>10} " + " ".join(f"{k:>12}" for k in keys))
    for size in sizes:
        med = {k: statistics.median(x[k] for x in results[size]) for k in keys}
        print(f"{size:>10,} " + " ".join(f"{med[k]:>12,.1f}" for k in keys))
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        ma = {k: statistics.median(x[k] for x in results[a]) for k in keys}
        mb = {k: statistics.median(x[k] for x in results[b]) for k in keys}
        print(
            f"\n{b:,} vs {a:,}: checkpoint max {mb['ckpt max ms'] / ma['ckpt max ms']:.2f}x, "
            f"checkpoint s/100k {mb['ckpt s/100k'] / ma['ckpt s/100k']:.2f}x, "
            f"read p99 {mb['read p99 ms'] / ma['read p99 ms']:.2f}x, "
            f"spans/s {mb['spans/s'] / ma['spans/s']:.2f}x, "
            f"B/span {mb['B/span'] / ma['B/span']:.2f}x"
        )


if __name__ == "__main__":
    main()
