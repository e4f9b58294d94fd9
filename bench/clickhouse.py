"""Threads on ClickHouse (chDB) against the DuckDB file, on the same spans in one run.

    python bench/clickhouse.py [--spans 10000000] [--rate 250] [--chunk 7680]
                               [--exporters 1] [--workers 1] [--rounds 20] [--json FILE]

Generates ``--spans`` spans of synthetic LLM threads (bench/conversations.py, the soak's
generator: threads of 10, 100 and 2,000 turns, 4 spans a turn, an LLM call with token
counts and messages in each; ``--exporters`` exporters of 32 conversations each,
interleaved) and streams them, ``--chunk`` spans at a time, at ``--rate`` spans/s into
both stores (memory stays bounded: one chunk at a time):

- the DuckDB file: the store's own insert path, then its derivation until done;
- chDB: the rows the OpenTelemetry Collector's clickhouseexporter writes
  (`to_exporter_spans`, then one insert), derived by ``--workers`` `Worker` s, shard i/K
  each, stepped one after the other in this process (chDB allows one process) between
  the inserts, settle time ``--settle`` (chDB shows an insert once it returns; a server
  with async inserts needs the worker's default of 2 s, which adds to the lag).

One thread does everything, so the chunks' generation, the file's insert and
derivation and the exporter's rows take turns with the workers: the workers keep up
when lag stays flat (the progress lines, every ``--every`` s, and the first/last
tenth). A worker derives a thread from its kept rows once it holds it whole, and
writes the new traces' LLM calls, messages and spans only, but every touched thread's
turns, transcript and list of traces whole (a new generation): that part of its cost per
batch grows with the threads' length (up to 2,000 turns here) and with how many
conversations run at once (``--exporters``). At the default rate, 10M spans take about
11 hours of ingest; ``--rate 0`` inserts each chunk once the one before shows up (the
workers and the file busy all the time: the lag is then one chunk's).
Figures (p50/p99: nearest rank over the calls or chunks):

- derivation, per deriver: new spans/s, the spans that arrived in its batches (for a
  worker: the traces of its shard, 4 spans each) over the time its batches took, as
  the median over batches and overall; derived spans/s, every span a worker loaded and
  derived for them (a thread's earlier turns are derived again with its new ones), and
  that per new span. The file's batch is a chunk, derived in full after its insert.
  Shard 0's vacuum (every 10 minutes, as `Worker.run`) counts in the batch it follows.
- insert: spans/s of each store's insert alone; chDB's without the exporter-row
  emulation (the bench's Python standing in for the Go exporter), timed apart.
- lag p50/p99: from a chunk's insert returning until every thread it touched shows
  all its turns in `threads` (chDB; polled between batches); for the file, its
  derivation after the insert. First/last tenth: the p50 of the first and last 10 %
  of chunks.
- reads, p50/p99 ms over ``--rounds`` calls (after a warm one), the stores idle, chDB
  and file calls alternating: `ThreadsClient.threads_query` as it is (50 by
  last_updated), with a filter (an attribute and at least 100 turns), sorted by input
  tokens, and with a text search; `ThreadsClient.thread` of the threads nearest to 10,
  100 and 2,000 turns (on chDB: the thread read back and derived alone, then kept by
  the reader until a worker writes it anew, so repeated calls read the kept one; "not
  kept" lets it go before each call). Ratio: chDB p50 over the file's.
- bytes on disk per span: chDB's active parts, raw (``otel_traces*``) and derived (every
  other table, all generations), and its whole folder (merged-away parts linger a few
  minutes); the DuckDB file after a checkpoint.
- exact counts: threads and turns in `threads` on both equal those generated.

Ends with a one-line summary; exit status 1 when a count is wrong or a chunk never
showed up. ``--json FILE`` also writes every figure, and each batch's (seconds, new
spans, derived spans).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clickhouse_reads import READS, detail_threads, folder_bytes, time_reads
from clickhouse_sides import SPANS_PER_REQUEST, ClickHouseSide, FileSide, Producer, rate


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run_ingest(args, producer: Producer, file: FileSide, ch: ClickHouseSide) -> dict:
    """Stream the chunks into both stores at the rate, the workers deriving between."""
    interval = args.chunk / args.rate if args.rate else 0.0
    pending: dict[int, tuple[float, dict[str, int]]] = {}
    lags: dict[int, float] = {}
    produced = chunks = 0
    started = due = last_print = time.monotonic()
    last_work = started  # when a worker last had arrivals
    last = {"spans": 0, "new": 0, "busy": 0.0, "lags": 0, "file": 0, "file_new": 0, "file_busy": 0}
    print(
        f"{'s':>6}{'spans':>12}{'in/s':>8}{'chDB new/s':>12}{'file new/s':>12}"
        f"{'chDB lag p50/p99 s':>20}{'file p50 s':>12}{'waiting':>9}",
        flush=True,
    )
    while produced < args.spans or pending:
        if produced < args.spans and (time.monotonic() >= due if args.rate else not pending):
            table, after = producer.chunk(min(args.chunk, args.spans - produced))
            file.add(table)
            ch.insert(table)
            pending[chunks] = (time.monotonic(), after)
            chunks += 1
            produced += table.num_rows
            due += interval
        worked = ch.step()
        if worked:
            last_work = time.monotonic()
        if pending:
            keys = list(pending)
            for key, done in zip(keys, ch.settled([pending[k][1] for k in keys]), strict=True):
                if done:
                    lags[key] = time.monotonic() - pending.pop(key)[0]
        now = time.monotonic()
        if pending and now - last_work > args.stall:  # the workers had their chance
            lost = [k for k, (at, _) in pending.items() if at <= last_work]
            for key in lost:
                del pending[key]
            if lost:
                print(f"{len(lost)} chunk(s) never showed up in threads ({args.stall:g} s idle)")
        if now - last_print >= args.every:
            progress(now - started, produced, ch, file, lags, pending, last, now - last_print)
            last_print = now
        if not worked:  # nothing to derive: wait for the next chunk (or the settle time)
            paced = args.rate and produced < args.spans
            time.sleep(max(0.0, min(0.05, due - now)) if paced else 0.05)
    elapsed = time.monotonic() - started
    ordered = [lags[k] for k in sorted(lags)]
    tenth = max(1, len(ordered) // 10)
    return {
        "spans": produced,
        "chunks": chunks,
        "seconds": elapsed,
        "insert_rate": rate(produced, elapsed),
        "never_derived": chunks - len(lags),
        "ch_lag": ordered,
        "ch_lag_first_last": (pct(ordered[:tenth], 0.5), pct(ordered[-tenth:], 0.5)),
        "file_lag_first_last": (pct(file.lags[:tenth], 0.5), pct(file.lags[-tenth:], 0.5)),
    }


def progress(elapsed, produced, ch, file, lags, pending, last, seconds) -> None:
    """One progress line: what the last ``seconds`` did."""
    new = sum(s.new_spans for s in ch.stats)
    busy = sum(s.busy_s for s in ch.stats)
    recent = [lags[k] for k in sorted(lags)[last["lags"] :]]
    file_new, file_busy = file.stats.new_spans, file.stats.busy_s
    print(
        f"{elapsed:>6.0f}{produced:>12,}{rate(produced - last['spans'], seconds):>8,.0f}"
        f"{rate(new - last['new'], busy - last['busy']):>12,.0f}"
        f"{rate(file_new - last['file_new'], file_busy - last['file_busy']):>12,.0f}"
        f"{pct(recent, 0.5):>11.2f}/{pct(recent, 0.99):<8.2f}"
        f"{pct(file.lags[last['file'] :], 0.5):>12.2f}{len(pending):>9}",
        flush=True,
    )
    last.update(spans=produced, new=new, busy=busy, lags=len(lags), file=len(file.lags),
                file_new=file_new, file_busy=file_busy)  # fmt: skip


def row(name: str, ch: str, file: str, ratio: str = "") -> None:
    print(f"{name:<44}{ch:>22}{file:>20}{ratio:>11}")


def pair(name: str, ch: float, file: float, fmt: str = ",.0f") -> None:
    """One figure of both stores, and chDB's over the file's."""
    ratio = ch / file if file else float("nan")
    row(name, format(ch, fmt), format(file, fmt), f"{ratio:.2f}")


def p50_p99(name: str, ch: list[float], file: list[float], scale: float, fmt: str) -> None:
    ratio = pct(ch, 0.5) / pct(file, 0.5) if file else float("nan")
    row(
        name,
        f"{pct(ch, 0.5) * scale:{fmt}} / {pct(ch, 0.99) * scale:{fmt}}",
        f"{pct(file, 0.5) * scale:{fmt}} / {pct(file, 0.99) * scale:{fmt}}" if file else "-",
        f"{ratio:.2f}",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument(
        "--rate",
        type=float,
        default=250.0,
        help="spans/s inserted (0: each chunk once the one before it shows up)",
    )
    ap.add_argument("--chunk", type=int, default=7680, help="spans per insert (whole 512s)")
    ap.add_argument("--workers", type=int, default=1, help="sharded workers, shard i/K each")
    ap.add_argument("--exporters", type=int, default=1, help="32 conversations each")
    ap.add_argument("--settle", type=float, default=0.0, help="the workers' settle_s")
    ap.add_argument("--memory-limit", default="1GiB", help="each DuckDB's (file, workers)")
    ap.add_argument("--rounds", type=int, default=20, help="calls per read")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between progress lines")
    ap.add_argument(
        "--stall",
        type=float,
        default=300.0,
        help="seconds the workers may find nothing while a chunk has not shown up (then it "
        "is counted as never derived)",
    )
    ap.add_argument("--dir", default=None, help="where the stores go (default: the temp dir)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the figures here")
    args = ap.parse_args()
    args.chunk = max(SPANS_PER_REQUEST, args.chunk // SPANS_PER_REQUEST * SPANS_PER_REQUEST)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder, db = Path(tmp) / "chdb", str(Path(tmp) / "bench.duckdb")
        url = f"chdb://{folder}?database=bench"
        producer = Producer(args.exporters)
        file = FileSide(db, args.memory_limit)
        ch = ClickHouseSide(url, args.workers, args.settle, args.memory_limit)
        print(
            f"{args.spans:,} spans of LLM threads (10/100/2,000 turns, {args.exporters} "
            f"exporters x 32 conversations), {args.chunk:,} a chunk at "
            f"{f'{args.rate:,.0f} spans/s' if args.rate else 'each chunk once derived'}, "
            f"into chDB ({args.workers} worker(s), settle {args.settle:g} s) and a DuckDB "
            f"file; one thread",
            flush=True,
        )
        ingest = run_ingest(args, producer, file, ch)
        ch.close()
        counts = {"generated": [producer.threads, sum(producer.turns.values())]}
        counts["chdb"], counts["file"] = list(ch.counts()), list(file.counts())
        file.close()
        picks = detail_threads(producer.turns)
        reads, counts["reads_differ"] = time_reads(url, db, picks, args.rounds)
        parts = ch.table_bytes()
        raw = sum(v for k, v in parts.items() if k.startswith("otel_traces"))
        sizes = {
            "chdb": sum(parts.values()),
            "chdb_folder": folder_bytes(folder),
            "chdb_raw": raw,
            "chdb_derived": sum(parts.values()) - raw,
            "file": folder_bytes(Path(tmp), suffix=(".duckdb", ".wal")),
        }
    report(args, ingest, ch, file, reads, picks, sizes, counts)


def report(args, ingest, ch, file, reads, picks, sizes, counts) -> None:
    n, lag, generated = ingest["spans"], ingest["ch_lag"], counts["generated"]
    print(
        f"\n{n:,} spans in {ingest['chunks']:,} chunks over {ingest['seconds']:,.0f} s "
        f"({ingest['insert_rate']:,.0f} spans/s inserted, target {args.rate:,.0f}); "
        f"{generated[0]:,} threads, {generated[1]:,} turns"
    )
    row("", "chDB", "DuckDB file", "chDB/file")
    fs = file.stats.summary()
    for i, stats in enumerate(ch.stats):
        s, label = stats.summary(), f"worker {i}/{len(ch.stats)}"
        key = "new_spans_per_s_median_batch"
        pair(f"{label}: new spans/s, median batch", s[key], fs[key])
        pair(f"{label}: new spans/s, overall", s["new_spans_per_s"], fs["new_spans_per_s"])
        row(
            f"{label}: derived spans/s (per new span)",
            f"{s['scope_spans_per_s']:,.0f} ({s['scope_per_new_span']:.1f})",
            "-",
        )
    row("  of which vacuum (shard 0, every 10 min) s", f"{ch.vacuum_s:,.1f}", "-")
    pair("insert spans/s", rate(n, ch.insert_s), rate(n, file.insert_s))
    row("  exporter-row emulation spans/s (Python)", f"{rate(n, ch.emulate_s):,.0f}", "-")
    p50_p99("lag p50 / p99 s", lag, file.lags, 1, ".2f")
    first, last = ingest["ch_lag_first_last"]
    ffirst, flast = ingest["file_lag_first_last"]
    row("lag p50, first / last tenth s", f"{first:.2f} / {last:.2f}", f"{ffirst:.2f} / {flast:.2f}")
    row("\nread (p50 / p99 ms)", "", "")
    for name, (ch_s, file_s) in reads.items():
        p50_p99(name, ch_s, file_s, 1e3, ",.1f")
    pair("bytes on disk / span", sizes["chdb"] / n, sizes["file"] / n)
    row(
        "  chDB raw / derived (all generations)",
        f"{sizes['chdb_raw'] / n:,.0f} / {sizes['chdb_derived'] / n:,.0f}",
        "",
    )
    row("  chDB folder (with merged-away parts)", f"{sizes['chdb_folder'] / n:,.0f}", "")
    ok = counts["chdb"] == generated == counts["file"] and not ingest["never_derived"]
    print(
        f"exact counts (threads, turns): generated {generated}, chDB {counts['chdb']}, "
        f"file {counts['file']}: {'OK' if ok else 'MISMATCH'}"
    )
    if ingest["never_derived"]:
        print(f"{ingest['never_derived']} chunk(s) never showed up in chDB's threads")
    for line in counts["reads_differ"]:
        print(f"answers differ: {line}")
        ok = False
    per_worker = rate(sum(st.new_spans for st in ch.stats), sum(st.busy_s for st in ch.stats))
    first_read, detail = reads[READS[0][0]], reads[list(reads)[-1]]
    print(
        f"summary: {n:,} spans, chDB vs file: derive {per_worker:,.0f} vs "
        f"{fs['new_spans_per_s']:,.0f} new spans/s/worker, lag p99 {pct(lag, 0.99):.2f} vs "
        f"{pct(file.lags, 0.99):.2f} s, list p50 {pct(first_read[0], 0.5) * 1e3:.0f} vs "
        f"{pct(first_read[1], 0.5) * 1e3:.0f} ms, detail ({picks[-1][1]:,} turns) p50 "
        f"{pct(detail[0], 0.5) * 1e3:.0f} vs {pct(detail[1], 0.5) * 1e3:.0f} ms, "
        f"{sizes['chdb'] / n:,.0f} vs {sizes['file'] / n:,.0f} B/span; counts "
        f"{'OK' if ok else 'MISMATCH'}"
    )
    if args.json:
        out = {
            "args": vars(args),
            "ingest": {k: v for k, v in ingest.items() if k != "ch_lag"},
            "lag_s_p50_p99": {"chdb": [pct(lag, q) for q in (0.5, 0.99)],
                              "file": [pct(file.lags, q) for q in (0.5, 0.99)]},
            "workers": [st.summary() for st in ch.stats],
            "worker_batches": [st.batch_log for st in ch.stats],
            "file": fs,
            "file_batches": file.stats.batch_log,
            "insert_s": {"chdb": ch.insert_s, "emulation": ch.emulate_s, "file": file.insert_s},
            "vacuum_s": ch.vacuum_s,
            "reads_ms_p50_p99": {
                k: {"chdb": [pct(a, q) * 1e3 for q in (0.5, 0.99)],
                    "file": [pct(b, q) * 1e3 for q in (0.5, 0.99)]}
                for k, (a, b) in reads.items()
            },
            "detail_threads": picks,
            "bytes": sizes,
            "counts": counts,
            "ok": ok,
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(_nan_free(out), indent=1))
    raise SystemExit(0 if ok else 1)


def _nan_free(value: object) -> object:
    """``value`` with NaN as null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _nan_free(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_free(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


if __name__ == "__main__":
    main()
