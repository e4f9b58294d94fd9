"""The derive worker: keeps the derived tables on ClickHouse current, one shard of threads.

A batch, start to end (`Worker.step`):

1. **Arrivals** past this shard's watermark (``otel_threads_arrivals``, written by
   ClickHouse itself on every insert into ``otel_traces`` / ``otel_logs``), up to a few
   seconds ago (``settle``: inserts ClickHouse has acknowledged but not made visible yet
   must not be skipped). A trace is this shard's when the hash of its thread (the
   arrival's hint; for an arrival without one, the threads the trace is in already)
   falls in it, or of its trace id when it is in no thread.
2. **Scope**: those traces, every trace of the threads they belonged to or name that the
   worker's store does not hold whole yet, and what their links to previous turns reach
   either way, loaded a round at a time until nothing new comes (``thread_traces``,
   ``turns`` and ``otel_threads_links`` say where to look; the spans are read by trace
   id within the traces' time bounds).
3. **Derivation** in the worker's own DuckDB (`LocalStore`), kept from batch to batch
   (up to `KEEP_SPANS` spans: past it, the threads touched longest ago leave it, those
   that stand alone, `evict_threads`; when that is not enough it is emptied): the file
   store's SQL, deriving what the new spans change from the kept rows of their threads,
   as a file does.
4. **Writes**: the rows of every thread of this shard that the batch touched, as a new
   generation, then the generations themselves, then the watermark; of the per-trace
   views (llm calls, messages, spans' threads), only the rows of the traces that
   arrived or resolved otherwise (another thread, turn, parent...): the generation names
   the earlier piece of every other trace, which this worker wrote (and remembers) since
   its store was last emptied. A thread that this shard does not own is not written:
   when a trace joined or left it, the trace is handed to its owner as a new arrival
   with that thread as hint.

So a worker that dies mid-batch has written nothing any view reads (its rows have no
generation) and derives the batch again when it restarts; and deriving twice writes
the same rows as a new generation, never twice in a view.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa

from otel_threads.clickhouse.engine import Engine
from otel_threads.clickhouse.loading import SCOPE_ROUNDS, Loader
from otel_threads.clickhouse.local import LocalStore
from otel_threads.clickhouse.schema import PER_TRACE, VIEWS, latest_rows
from otel_threads.prices import PriceEntry

__all__ = ["BatchResult", "Worker", "owner", "parse_shard"]

_logger = logging.getLogger(__name__)

#: Arrival rows one batch takes at most.
BATCH_ARRIVALS = 2000
#: How long ClickHouse may take to show an acknowledged insert (async inserts flush
#: within a second by default): arrivals younger than this wait for the next batch.
SETTLE_S = 2.0
#: Spans the worker's own store keeps across batches at most: past it, it is emptied
#: (the threads it held are read back whole when next touched).
KEEP_SPANS = 2_000_000
#: Generations superseded this long ago are deleted by `vacuum` (a worker writes a
#: thread's rows and then its generation within seconds: never one being written).
VACUUM_AFTER_S = 600


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (shard I of N, counted from 0) as (I, N)."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: I must be from 0 to N-1")
    return index, count


def owner(key: str, count: int) -> int:
    """The shard (of ``count``) that owns a thread id, or a trace id without one."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass
class BatchResult:
    """What one batch did."""

    arrivals: int = 0
    traces: int = 0
    spans: int = 0
    threads_written: int = 0
    forwarded: int = 0
    more: bool = False
    threads: list[str] = field(default_factory=list)


class Worker:
    """Derives one shard of the threads (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        shard: tuple[int, int] = (0, 1),
        settle_s: float = SETTLE_S,
        batch_arrivals: int = BATCH_ARRIVALS,
        memory_limit: str | None = None,
        prices: list[PriceEntry] | None = None,
        keep_spans: int = KEEP_SPANS,
    ) -> None:
        self.engine = engine
        self.index, self.count = shard
        self.key = f"{self.index}/{self.count}"
        self.settle_us = int(settle_s * 1e6)
        self.batch_arrivals = batch_arrivals
        self.local = LocalStore(memory_limit, prices)
        #: threads the kept store holds whole (every trace of theirs read back)
        self.kept: set[str] = set()
        #: for each thread this worker wrote since its store was last emptied, each of its
        #: traces' piece (the generation holding its rows of the per-trace views) and the
        #: hash of its resolution those rows were derived with (`LocalStore.resolutions`)
        self.pieces: dict[str, dict[str, tuple[int, int]]] = {}
        self.keep_spans = keep_spans
        #: the batch that last touched each kept thread (`_make_room` lets the oldest go)
        self.touched: dict[str, int] = {}
        self.batches = 0
        self.loader = Loader(engine)

    def close(self) -> None:
        self.local.close()

    def mine(self, thread_or_trace: str) -> bool:
        return owner(thread_or_trace, self.count) == self.index

    # -- the batch -------------------------------------------------------------------

    def run_once(self) -> list[BatchResult]:
        """Derive every batch that has arrived (as of now, less the settle time)."""
        results = []
        while True:
            result = self.step()
            results.append(result)
            if not result.more:
                return results

    def run(self, stop: threading.Event, poll_s: float = 1.0, once: bool = False) -> dict[str, int]:
        """Derive until ``stop`` is set (looking again every ``poll_s``), or, ``once``, what
        has arrived; shard 0 vacuums every `VACUUM_AFTER_S` (and at the end of ``once``).
        Returns the totals: arrivals, traces, threads (generations written), forwarded."""
        total = {"arrivals": 0, "traces": 0, "threads": 0, "forwarded": 0}
        vacuumed = time.monotonic()
        while not stop.is_set():
            for result in self.run_once():
                total["arrivals"] += result.arrivals
                total["traces"] += result.traces
                total["threads"] += result.threads_written
                total["forwarded"] += result.forwarded
            if self.index == 0 and (once or time.monotonic() - vacuumed > VACUUM_AFTER_S):
                self.vacuum()
                vacuumed = time.monotonic()
            if once:
                break
            stop.wait(poll_s)
        return total

    def step(self) -> BatchResult:
        """Derive one batch of arrivals (see the module docstring)."""
        watermark = self._watermark()
        cut = self._now_us() - self.settle_us
        arrivals = self._arrivals(watermark, cut)
        result = BatchResult(arrivals=len(arrivals), more=len(arrivals) >= self.batch_arrivals)
        if not arrivals:
            return result
        new_watermark = max(a[2] for a in arrivals)
        if result.more:  # the last instant may continue past the limit: take it next time
            earlier = [a for a in arrivals if a[2] < new_watermark]
            if earlier:
                arrivals, new_watermark = earlier, max(a[2] for a in earlier)
            else:  # one insert's arrivals share one instant, however many: take them all
                arrivals = self._arrivals_at(new_watermark)
                result.arrivals = len(arrivals)
        # a trace without a thread id of its own (a late child span, a log record) goes to
        # the owners of the threads it is in already, else by its trace id
        known = self.loader.threads_of(sorted({t for t, hint, _ in arrivals if not hint}))
        hints: dict[str, set[str]] = {}
        for trace_id, hint, _ in arrivals:
            threads = {hint} if hint else known.get(trace_id, set())
            mine = {t for t in threads if self.mine(t)}
            if mine or (not threads and self.mine(trace_id)):
                hints.setdefault(trace_id, set()).update(mine)
        if hints:
            self._derive(hints, new_watermark, result)
        self._set_watermark(new_watermark)
        return result

    def _derive(self, hints: dict[str, set[str]], inputs_at: int, result: BatchResult) -> None:
        try:
            self._derive_kept(hints, inputs_at, result)
            if self.local.span_count() > self.keep_spans:
                self._make_room()
        except BaseException:
            self._forget()  # (what the kept store holds may be half a batch)
            raise

    def _make_room(self) -> None:
        """Let the threads touched longest ago leave the kept store (an eighth of them at
        a time, those that stand alone; never those of this batch) until it holds at most
        3/4 of `keep_spans`; empty it when they do not suffice. A thread that left is read back
        whole when next touched."""
        idle = [t for t in self.kept if self.touched.get(t, 0) < self.batches]  # (not at work)
        oldest = sorted(idle, key=lambda t: (self.touched.get(t, 0), t))
        step = max(1, len(oldest) // 8)
        while oldest and self.local.span_count() > self.keep_spans * 3 // 4:
            some, oldest = oldest[:step], oldest[step:]
            for thread_id in self.local.evict(some):
                self.kept.discard(thread_id)
                self.pieces.pop(thread_id, None)
                self.touched.pop(thread_id, None)
        if self.local.span_count() > self.keep_spans:
            self._forget()

    def _forget(self) -> None:
        """Empty the kept store: threads are read whole again when next touched."""
        self.local.reset()
        self.kept.clear()
        self.pieces.clear()
        self.touched.clear()

    def _derive_kept(self, hints: dict[str, set[str]], inputs_at: int, result: BatchResult) -> None:
        arrived = sorted(hints)
        before = self.loader.threads_of(arrived)
        threads = {t for t in set().union(*hints.values(), *before.values()) if self.mine(t)}
        loaded = 0
        for _ in range(SCOPE_ROUNDS):
            # the arrived traces (again: new spans of a kept trace are added), and every
            # trace of the threads the kept store does not hold whole yet
            whole = threads - self.kept
            spans, logs = self.loader.scope(set(arrived), whole, self.kept)
            self.local.add(spans, logs)
            self.kept |= whole
            loaded += spans.num_rows
            after = self.local.trace_threads(arrived)
            now = set().union(*(after.get(t, set()) for t in arrived))
            # a thread of this shard that the scope did not hold in full (a trace without
            # a thread id that turned out to be in it): derive again with all of it
            missing = {t for t in now - threads if self.mine(t) and t not in self.kept}
            threads |= {t for t in now if self.mine(t)}
            if not missing:
                break
        result.traces = len(arrived)
        result.spans = loaded
        write = sorted(t for t in threads | now if self.mine(t))
        if write:
            self._write(write, inputs_at, set(arrived))
        result.threads_written = len(write)
        result.threads = write
        self.batches += 1
        self.touched.update(dict.fromkeys(threads, self.batches))
        moved = []
        for trace_id in arrived:
            changed = before.get(trace_id, set()) ^ after.get(trace_id, set())
            moved += [(trace_id, t) for t in sorted(changed) if not self.mine(t)]
        if moved:
            self.engine.insert(
                "otel_threads_arrivals",
                pa.table({"TraceId": [m[0] for m in moved], "Hint": [m[1] for m in moved]}),
            )
        result.forwarded = len(moved)

    def vacuum(self, after_s: float = VACUUM_AFTER_S) -> None:
        """Delete the rows of generations that a newer one replaced more than ``after_s``
        ago (each re-derivation of a thread writes its rows again, but for the pieces it
        names, which stay while the latest generation names them), and of generations that
        never got written in full (a worker died mid-batch). Any worker may run it;
        shard 0 does, every `VACUUM_AFTER_S`."""
        horizon = {"horizon": time.time_ns() - int(after_s * 1e9)}
        for view in VIEWS:  # (a piece is kept while the latest generation names it)
            self.engine.command(
                f"DELETE FROM otel_threads_{view}_gen "
                f"WHERE gen < {{horizon:UInt64}} AND NOT {latest_rows(view)}",
                horizon,
            )
        stale = f"gen < {{horizon:UInt64}} AND NOT {latest_rows('threads')}"
        for table in ("otel_threads_thread_traces_gen", "otel_threads_thread_gens"):
            self.engine.command(f"DELETE FROM {table} WHERE {stale}", horizon)

    # -- reading ClickHouse ---------------------------------------------------------

    def _now_us(self) -> int:
        return int(self.engine.rows("SELECT toUnixTimestamp64Micro(now64(6))")[0][0])

    def _watermark(self) -> int:
        rows = self.engine.rows(
            "SELECT toUnixTimestamp64Micro(argMax(watermark, updated_at)) "
            "FROM otel_threads_watermarks WHERE shard = {shard:String} HAVING count() > 0",
            {"shard": self.key},
        )
        return int(rows[0][0]) if rows else 0

    def _set_watermark(self, watermark_us: int) -> None:
        self.engine.insert(
            "otel_threads_watermarks",
            pa.table(
                {
                    "shard": [self.key],
                    "watermark": pa.array([watermark_us], pa.timestamp("us", "UTC")),
                }
            ),
        )

    def _arrivals_at(self, instant_us: int) -> list[tuple[str, str, int]]:
        return self.engine.rows(
            "SELECT TraceId, Hint, toUnixTimestamp64Micro(ArrivedAt) AS at "
            "FROM otel_threads_arrivals "
            "WHERE ArrivedAt = fromUnixTimestamp64Micro({at:Int64}, 'UTC')",
            {"at": instant_us},
        )

    def _arrivals(self, watermark_us: int, cut_us: int) -> list[tuple[str, str, int]]:
        return self.engine.rows(
            "SELECT TraceId, Hint, toUnixTimestamp64Micro(ArrivedAt) AS at "
            "FROM otel_threads_arrivals "
            "WHERE ArrivedAt > fromUnixTimestamp64Micro({lo:Int64}, 'UTC') "
            "AND ArrivedAt <= fromUnixTimestamp64Micro({hi:Int64}, 'UTC') "
            "ORDER BY ArrivedAt LIMIT {n:UInt32}",
            {"lo": watermark_us, "hi": cut_us, "n": self.batch_arrivals},
        )

    # -- writing ClickHouse ---------------------------------------------------------

    def _write(self, threads: list[str], inputs_at_us: int, arrived: set[str]) -> None:
        gen = time.time_ns()
        traces = self.local.thread_traces(threads)
        resolved = self.local.resolutions(threads)
        pieces: list[int] = []
        written: dict[str, dict[str, tuple[int, int]]] = {t: {} for t in threads}
        fresh: set[str] = set()  # traces whose per-trace rows this generation writes
        for thread_id, trace_id in zip(
            traces.column("thread_id").to_pylist(),
            traces.column("trace_id").to_pylist(),
            strict=True,
        ):
            mark = resolved.get(trace_id, 0)
            piece, was = self.pieces.get(thread_id, {}).get(trace_id, (0, None))
            if not piece or was != mark or trace_id in arrived:
                piece = gen
                fresh.add(trace_id)
            pieces.append(piece)
            written[thread_id][trace_id] = (piece, mark)
        per_trace = self.local.trace_rows(threads, sorted(fresh))
        for view in VIEWS:
            rows = per_trace[view] if view in PER_TRACE else self.local.rows(view, threads)
            rows = rows.add_column(0, "gen", pa.array([gen] * rows.num_rows, pa.uint64()))
            self.engine.insert(f"otel_threads_{view}_gen", _fill_lists(rows))
        self.engine.insert(
            "otel_threads_thread_traces_gen",
            pa.table(
                {
                    "thread_id": traces.column("thread_id"),
                    "gen": pa.array([gen] * traces.num_rows, pa.uint64()),
                    "trace_id": traces.column("trace_id"),
                    "start_time": traces.column("start_ns").cast(pa.timestamp("ns", "UTC")),
                    "end_time": traces.column("end_ns").cast(pa.timestamp("ns", "UTC")),
                    "piece": pa.array(pieces, pa.uint64()),
                }
            ),
        )
        self.engine.insert(
            "otel_threads_thread_gens",
            pa.table(
                {
                    "thread_id": threads,
                    "inputs_at": pa.array([inputs_at_us] * len(threads), pa.timestamp("us", "UTC")),
                    "gen": pa.array([gen] * len(threads), pa.uint64()),
                }
            ),
        )
        self.pieces.update(written)


def _fill_lists(rows: pa.Table) -> pa.Table:
    """ClickHouse arrays are never NULL: a missing list is written empty."""
    for i, column in enumerate(rows.columns):
        if pa.types.is_list(column.type) and column.null_count:
            filled = pa.chunked_array(
                [
                    pa.compute.if_else(chunk.is_null(), pa.scalar([], column.type), chunk)
                    for chunk in column.chunks
                ],
                column.type,
            )
            rows = rows.set_column(i, rows.schema.field(i), filled)
    return rows
