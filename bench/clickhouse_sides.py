"""The two stores bench/clickhouse.py compares, fed the same spans chunk by chunk.

- `Producer`: the spans, ``--exporters`` exporters' conversations (bench/conversations.py)
  interleaved request by request, decoded by our OTLP decoder into ``SPAN_SCHEMA`` tables.
- `FileSide`: a DuckDB file store taking each chunk through the store's own insert path
  (`insert_batch`, derivation queued) and deriving it at once (`Deriver.refresh` until
  done), as the collector's writer and deriver do.
- `ClickHouseSide`: a chDB database taking each chunk as the clickhouseexporter writes it
  (`to_exporter_spans` then the insert: `insert_as_exporter`'s two steps, timed apart),
  derived by ``--workers`` sharded `Worker` s stepped one after the other; shard 0's
  worker vacuums every `VACUUM_AFTER_S`, as `Worker.run` does (its time counts as a
  batch's: `ClickHouseSide.vacuum_s` says how much of it).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import pyarrow as pa
from conversations import SPANS_PER_TURN, TURNS_PER_REQUEST, Conversations, request

from otel_threads.clickhouse.engine import connect_engine
from otel_threads.clickhouse.exporter_emulation import to_exporter_spans
from otel_threads.clickhouse.exporter_schema import TRACES_TABLE
from otel_threads.clickhouse.schema import init_schema
from otel_threads.clickhouse.worker import VACUUM_AFTER_S, Worker
from otel_threads.otlp.decode import decode_traces_protobuf
from otel_threads.store.derive import Deriver
from otel_threads.store.insert import insert_batch
from otel_threads.store.schema import connect

SPANS_PER_REQUEST = TURNS_PER_REQUEST * SPANS_PER_TURN


class Producer:
    """The bench's spans, a chunk at a time (see the module docstring)."""

    def __init__(self, exporters: int) -> None:
        self.exporters = [Conversations(1000 * (i + 1)) for i in range(exporters)]
        self.k = 0
        #: turns generated so far, per thread
        self.turns: dict[str, int] = {}

    def chunk(self, spans: int) -> tuple[pa.Table, dict[str, int]]:
        """``spans`` spans (rounded up to whole requests of 512), and the turns each thread they
        touch has once they are in."""
        parts, after = [], {}
        for _ in range(max(1, -(-spans // SPANS_PER_REQUEST))):
            conversations = self.exporters[self.k % len(self.exporters)]
            self.k += 1
            spans_bytes, convs = conversations.next_turns()
            parts.append(request(spans_bytes))
            after.update((c.thread_id, c.turns) for c in convs)
        self.turns.update(after)
        return decode_traces_protobuf(b"".join(parts)).table, after

    @property
    def threads(self) -> int:
        return sum(c.started for c in self.exporters)


def rate(spans: float, seconds: float) -> float:
    return spans / seconds if seconds > 0 else float("nan")


@dataclass
class Stats:
    """Derivation figures of one deriver (a worker, or the file's `Deriver`)."""

    busy_s: float = 0.0
    new_spans: int = 0
    #: spans loaded and derived (the new ones and the earlier spans of their threads)
    scope_spans: int = 0
    batches: int = 0
    batch_rates: list[float] = field(default_factory=list)
    #: (seconds, new spans, spans derived) of each batch
    batch_log: list[tuple[float, int, int]] = field(default_factory=list)

    def add(self, seconds: float, new: int, scope: int = 0) -> None:
        self.busy_s += seconds
        self.new_spans += new
        self.scope_spans += scope
        if new:
            self.batches += 1
            self.batch_rates.append(rate(new, seconds))
            self.batch_log.append((round(seconds, 4), new, scope))

    def summary(self) -> dict:
        return {
            "batches": self.batches,
            "new_spans_per_s_median_batch": (
                statistics.median(self.batch_rates) if self.batch_rates else float("nan")
            ),
            "new_spans_per_s": rate(self.new_spans, self.busy_s),
            # (0 where not known: the file's deriver does not say)
            "scope_spans_per_s": rate(self.scope_spans, self.busy_s),
            "scope_per_new_span": self.scope_spans / max(1, self.new_spans),
            "busy_s": self.busy_s,
        }


class FileSide:
    """A DuckDB file store, each chunk inserted then derived at once."""

    def __init__(self, path: str, memory_limit: str) -> None:
        self.path = path
        self.con = connect(path)
        self.con.execute(f"SET memory_limit = '{memory_limit}'")
        self.deriver = Deriver(self.con)
        self.seq = 1
        self.insert_s = 0.0
        self.stats = Stats()
        self.lags: list[float] = []

    def add(self, table: pa.Table) -> None:
        started = time.perf_counter()
        self.con.execute("BEGIN TRANSACTION")
        insert_batch(self.con, "spans", table, self.seq, time.time_ns() // 1000, True)
        self.con.execute("COMMIT")
        self.seq += table.num_rows
        inserted = time.perf_counter()
        while self.deriver.refresh():
            pass
        derived = time.perf_counter()
        self.insert_s += inserted - started
        # (it derives whole threads too, but does not say how many spans they hold)
        self.stats.add(derived - inserted, table.num_rows)
        self.lags.append(derived - inserted)

    def counts(self) -> tuple[int, int]:
        """(threads, turns) in the `threads` view."""
        row = self.con.execute("SELECT count(*), coalesce(sum(turn_count), 0) FROM threads")
        threads, turns = row.fetchone()
        return int(threads), int(turns)

    def close(self) -> None:
        self.con.execute("CHECKPOINT")
        self.con.close()


class ClickHouseSide:
    """A chDB database fed as the exporter feeds it, derived by sharded workers."""

    def __init__(self, url: str, workers: int, settle_s: float, memory_limit: str) -> None:
        self.url = url
        self.engine = connect_engine(url)
        init_schema(self.engine)
        self.workers = [
            Worker(self.engine, (i, workers), settle_s=settle_s, memory_limit=memory_limit)
            for i in range(workers)
        ]
        self.stats = [Stats() for _ in range(workers)]
        self.emulate_s = self.insert_s = 0.0
        self.vacuum_s = 0.0
        self.vacuumed = time.monotonic()

    def insert(self, table: pa.Table) -> None:
        started = time.perf_counter()
        rows = to_exporter_spans(table)
        converted = time.perf_counter()
        self.engine.insert(TRACES_TABLE, rows)
        self.emulate_s += converted - started
        self.insert_s += time.perf_counter() - converted

    def _watermark(self, worker: Worker) -> int:
        rows = self.engine.rows(
            "SELECT toUnixTimestamp64Micro(argMax(watermark, updated_at)) "
            "FROM otel_threads_watermarks WHERE shard = {shard:String} HAVING count() > 0",
            {"shard": worker.key},
        )
        return int(rows[0][0]) if rows else 0

    def _owned_spans(self, worker: Worker, lo: int, hi: int) -> int:
        """Spans of the arrivals in (lo, hi] that ``worker`` owns (each trace a turn of
        SPANS_PER_TURN spans)."""
        rows = self.engine.rows(
            "SELECT DISTINCT TraceId, Hint FROM otel_threads_arrivals "
            "WHERE ArrivedAt > fromUnixTimestamp64Micro({lo:Int64}, 'UTC') "
            "AND ArrivedAt <= fromUnixTimestamp64Micro({hi:Int64}, 'UTC')",
            {"lo": lo, "hi": hi},
        )
        return SPANS_PER_TURN * sum(1 for trace, hint in rows if worker.mine(hint or trace))

    def step(self) -> bool:
        """One batch of each worker in turn; whether any had arrivals."""
        worked = False
        for worker, stats in zip(self.workers, self.stats, strict=True):
            lo = self._watermark(worker)
            started = time.perf_counter()
            result = worker.step()
            vacuum = time.monotonic() - self.vacuumed > VACUUM_AFTER_S
            if result.arrivals and worker.index == 0 and vacuum:
                before = time.perf_counter()
                worker.vacuum()
                self.vacuum_s += time.perf_counter() - before
                self.vacuumed = time.monotonic()
            took = time.perf_counter() - started
            if result.arrivals:
                worked = True
                stats.add(
                    took, self._owned_spans(worker, lo, self._watermark(worker)), result.spans
                )
        return worked

    def settled(self, pending: list[dict[str, int]]) -> list[bool]:
        """For each of ``pending`` ({thread: turns}), whether `threads` shows every one of
        its threads with at least those turns."""
        ids = sorted(set().union(*pending))
        got = dict(
            self.engine.rows(
                "SELECT thread_id, turn_count FROM threads WHERE thread_id IN {ids:Array(String)}",
                {"ids": ids},
            )
        )
        return [all((got.get(t) or 0) >= n for t, n in want.items()) for want in pending]

    def counts(self) -> tuple[int, int]:
        """(threads, turns) in the `threads` view."""
        threads, turns = self.engine.rows("SELECT count(), sum(turn_count) FROM threads")[0]
        return int(threads), int(turns or 0)

    def table_bytes(self) -> dict[str, int]:
        """Bytes on disk of each table of the database (active parts)."""
        return dict(
            self.engine.rows(
                "SELECT table, sum(bytes_on_disk) FROM system.parts "
                "WHERE database = {db:String} AND active GROUP BY table",
                {"db": self.engine.database},
            )
        )

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
