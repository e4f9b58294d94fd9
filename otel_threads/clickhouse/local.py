"""A worker's own DuckDB: where traces read back from ClickHouse are derived, by the file
store's SQL.

A `LocalStore` is an in-memory otel-threads store (the same migrations and views as a
file). It is given spans and logs (`add`) and derives them with `Deriver`, exactly as a
file derives its queue: so ClickHouse gets the rows a DuckDB file would hold for the same
spans. The derive worker keeps one across batches, holding the threads of its shard that
it has read whole (`otel_threads.clickhouse.worker`); a reader derives one thread alone
in one (`derive`).
"""

from __future__ import annotations

import time

import duckdb
import pyarrow as pa

from otel_threads.clickhouse.schema import PER_TRACE, VIEWS
from otel_threads.prices import PriceEntry, reprice
from otel_threads.store.derive import DERIVED, Deriver
from otel_threads.store.eviction import evict_threads
from otel_threads.store.insert import insert_batch
from otel_threads.store.schema import apply_views, migrate
from otel_threads.store.sqlfiles import sql_files
from otel_threads.store.trace_numbers import generations
from otel_threads.store.turn_keys import TURN_KEYS

__all__ = ["LocalStore"]

#: What a batch leaves behind, with the derived tables: emptied before the next one (the
#: rest is the schema's own bookkeeping: migrations, views' versions, model prices).
_DATA_TABLES = (
    "spans_raw",
    "logs",
    "derive_queue",
    "derive_errors",
    "linked_turns",
    "thread_versions",
    "annotation_records",
    "evaluation_runs",
    "response_evaluations",
    *(table for table, _, _ in DERIVED),
)

#: DuckDB types the ClickHouse tables hold otherwise (see schema._TYPES).
_CASTS = {"HUGEINT": "BIGINT", "JSON": "VARCHAR"}

#: Tables whose rows are each one trace's (keyed by trace_id), and the price table.
_PER_TRACE_TABLES = {"spans_raw", "logs", *(t for t, _, key in DERIVED if key == "trace_id")}
_CONSTANT_TABLES = {"model_prices"}


def _tables_read(view: str) -> set[str]:
    """The tables ``view`` reads, through the views it reads."""
    files = sql_files()
    todo, seen, tables = [view], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in files.texts:
            todo += files.names[name]
        else:
            tables.add(name)
    return tables


def per_trace_inputs() -> list[str]:
    """The tables `PER_TRACE` views read, each keyed by trace (`ValueError` when one reads
    rows of a whole thread: its rows of a trace could change with another trace's)."""
    tables = set().union(*(_tables_read(v) for v in PER_TRACE)) - _CONSTANT_TABLES
    if tables - _PER_TRACE_TABLES:
        raise ValueError(f"per-trace views read {sorted(tables - _PER_TRACE_TABLES)}")
    return sorted(tables)


class LocalStore:
    """One in-memory store, reused batch after batch (see the module docstring)."""

    def __init__(
        self, memory_limit: str | None = None, prices: list[PriceEntry] | None = None
    ) -> None:
        self.con = duckdb.connect()
        if memory_limit:
            quoted = memory_limit.replace("'", "''")
            self.con.execute(f"SET memory_limit = '{quoted}'")
        migrate(self.con)
        apply_views(self.con)
        reprice(self.con, prices)  # (a price file's entries, as `collect --prices` takes)
        self._seq = 1
        #: traces set aside by the derivation (bad data), all batches together
        self.set_aside = 0
        self._selects = {view: self._select(view) for view in VIEWS}
        self._trace_inputs = per_trace_inputs()

    def _select(self, view: str) -> str:
        columns = self.con.execute(f"DESCRIBE {view}").fetchall()
        out = []
        for name, kind, *_ in columns:
            target = _CASTS.get(kind)
            quoted = '"' + name.replace('"', '""') + '"'
            out.append(f"{quoted}::{target} AS {quoted}" if target else quoted)
        return f"SELECT {', '.join(out)} FROM {view}"

    def close(self) -> None:
        self.con.close()

    def reset(self) -> None:
        """Empty the store (its derived tables too)."""
        # (and the trace numbers, the turn keys)
        for table in (*_DATA_TABLES, *generations(self.con), *TURN_KEYS.tables(self.con)):
            self.con.execute(f"DELETE FROM {table}")

    def derive(self, spans: pa.Table, logs: pa.Table) -> None:
        """Empty the store, then `add` ``spans`` and ``logs``: they alone, derived."""
        self.reset()
        self.add(spans, logs)

    def add(self, spans: pa.Table, logs: pa.Table) -> None:
        """Put ``spans`` and ``logs`` in the store (SPAN_SCHEMA, LOG_SCHEMA, as the decoder
        makes them; those it holds already are dropped, as a file drops redeliveries) and
        derive what they change, as a file derives its queue: from the kept rows of their
        threads, so a new turn of a long thread costs what a turn of a short one does."""
        con = self.con
        received_us = time.time_ns() // 1000
        con.execute("BEGIN TRANSACTION")
        try:
            for kind, table in (("spans", spans), ("logs", logs)):
                insert_batch(con, kind, table, self._seq, received_us, queue_derive=True)
                self._seq += table.num_rows
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        deriver = Deriver(con)
        while deriver.refresh():
            pass
        self.set_aside += int(con.execute("SELECT count(*) FROM derive_errors").fetchall()[0][0])

    def evict(self, threads: list[str]) -> set[str]:
        """Take ``threads`` out of the store, those that stand alone (`evict_threads`);
        returns those taken out."""
        return evict_threads(self.con, threads)

    def span_count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM spans_raw").fetchall()[0][0])

    def trace_threads(self, traces: list[str] | None = None) -> dict[str, set[str]]:
        """The threads each derived trace (of ``traces``, or all) has spans in."""
        where = "" if traces is None else " AND trace_id = ANY($traces::VARCHAR[])"
        out: dict[str, set[str]] = {}
        for trace_id, thread_id in self.con.sql(
            "SELECT DISTINCT trace_id, thread_id FROM span_threads WHERE thread_id IS NOT NULL"
            + where,
            params=None if traces is None else {"traces": traces},
        ).fetchall():
            out.setdefault(trace_id, set()).add(thread_id)
        return out

    def rows(self, view: str, threads: list[str]) -> pa.Table:
        """The rows of ``view`` for ``threads``."""
        return self.con.sql(
            f"{self._selects[view]} WHERE thread_id = ANY($threads::VARCHAR[])",
            params={"threads": threads},
        ).to_arrow_table()

    def trace_rows(self, threads: list[str], traces: list[str]) -> dict[str, pa.Table]:
        """The rows of each `PER_TRACE` view for ``threads``, of ``traces`` only: derived
        from those traces' rows alone (TEMP tables of the same names stand in for the
        tables the views read, as in a refresh: otel_threads.store.derive), so they cost
        the traces, not the threads."""
        con = self.con
        db = '"' + con.execute("SELECT current_database()").fetchall()[0][0] + '".main'
        con.register("__traces", pa.table({"v": pa.array(traces, pa.string())}))
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _traces AS SELECT v FROM __traces")
        finally:
            con.unregister("__traces")
        try:
            for table in self._trace_inputs:
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {db}.{table} "
                    "WHERE trace_id IN (SELECT v FROM temp._traces)"
                )
            return {view: self.rows(view, threads) for view in PER_TRACE}
        finally:
            for table in (*self._trace_inputs, "_traces"):
                con.execute(f"DROP TABLE IF EXISTS temp.{table}")

    def resolutions(self, threads: list[str]) -> dict[str, int]:
        """For each trace with spans in ``threads``, a hash of how its spans resolved (every
        span's thread, turn, depth, ...: its ``span_threads`` rows): the rows of the
        per-trace views of a trace that did not change and kept this hash are as before."""
        return dict(
            self.con.sql(
                "SELECT trace_id, hash(list(s ORDER BY span_id)) FROM span_threads s "
                "WHERE trace_id IN (SELECT trace_id FROM span_threads "
                "WHERE thread_id = ANY($threads::VARCHAR[])) GROUP BY trace_id",
                params={"threads": threads},
            ).fetchall()
        )

    def thread_traces(self, threads: list[str]) -> pa.Table:
        """(thread_id, trace_id, start_time, end_time) of the traces in ``threads``."""
        return self.con.sql(
            "SELECT thread_id, trace_id, min(start_time_unix_nano) AS start_ns, "
            "max(coalesce(end_time_unix_nano, start_time_unix_nano)) AS end_ns "
            "FROM spans WHERE thread_id = ANY($threads::VARCHAR[]) GROUP BY ALL",
            params={"threads": threads},
        ).to_arrow_table()
