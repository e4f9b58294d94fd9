"""A worker's own DuckDB: where the traces of one batch are derived, by the file store's SQL.

A `LocalStore` is an in-memory otel-threads store (the same migrations and views as a
file). For each batch it is emptied, given the spans and logs of the batch's scope (the
traces that arrived and every trace of their threads, as `otel_threads.clickhouse.worker`
loads them from ClickHouse), and derived with `Deriver`, exactly as a file derives its
queue: so ClickHouse gets the rows a DuckDB file would hold for the same spans.
"""

from __future__ import annotations

import time

import duckdb
import pyarrow as pa

from otel_threads.clickhouse.schema import VIEWS
from otel_threads.prices import PriceEntry, reprice
from otel_threads.store.derive import DERIVED, Deriver
from otel_threads.store.insert import insert_batch
from otel_threads.store.schema import apply_views, migrate

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


class LocalStore:
    """One in-memory store, reused batch after batch (see the module docstring)."""

    def __init__(
        self, memory_limit: str | None = None, prices: list[PriceEntry] | None = None
    ) -> None:
        self.con = duckdb.connect()
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        migrate(self.con)
        apply_views(self.con)
        reprice(self.con, prices)  # (a price file's entries, as `collect --prices` takes)
        self._seq = 1
        #: traces set aside by the derivation (bad data), all batches together
        self.set_aside = 0
        self._selects = {view: self._select(view) for view in VIEWS}

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

    def derive(self, spans: pa.Table, logs: pa.Table) -> None:
        """Empty the store, put ``spans`` and ``logs`` in it (SPAN_SCHEMA, LOG_SCHEMA, as the
        decoder makes them; redeliveries among them are dropped) and derive them."""
        con = self.con
        for table in _DATA_TABLES:
            con.execute(f"DELETE FROM {table}")
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

    def trace_threads(self) -> dict[str, set[str]]:
        """The threads each derived trace has spans in."""
        out: dict[str, set[str]] = {}
        for trace_id, thread_id in self.con.execute(
            "SELECT DISTINCT trace_id, thread_id FROM span_threads WHERE thread_id IS NOT NULL"
        ).fetchall():
            out.setdefault(trace_id, set()).add(thread_id)
        return out

    def rows(self, view: str, threads: list[str]) -> pa.Table:
        """The rows of ``view`` for ``threads``."""
        return self.con.sql(
            f"{self._selects[view]} WHERE thread_id = ANY($threads::VARCHAR[])",
            params={"threads": threads},
        ).to_arrow_table()

    def thread_traces(self, threads: list[str]) -> pa.Table:
        """(thread_id, trace_id, start_time, end_time) of the traces in ``threads``."""
        return self.con.sql(
            "SELECT thread_id, trace_id, min(start_time_unix_nano) AS start_ns, "
            "max(coalesce(end_time_unix_nano, start_time_unix_nano)) AS end_ns "
            "FROM spans WHERE thread_id = ANY($threads::VARCHAR[]) GROUP BY ALL",
            params={"threads": threads},
        ).to_arrow_table()
