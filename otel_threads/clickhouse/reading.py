"""Reading threads from ClickHouse: what `ThreadsClient("clickhouse://...")` and
`otel-threads serve --clickhouse` answer, with the semantics of a DuckDB file.

- The threads list runs on ClickHouse, over the derived `threads` view and the views
  its filters read (`otel_threads.clickhouse.filters`: the same conditions).
- One thread's detail (its turns, transcript, forks, branches, errors, a turn's spans)
  is what the file store's own queries answer over that thread alone: its traces are
  read back (`Loader.scope`) into an in-memory store and derived there, so every detail
  the file gives (spans with their attributes, a branch through any turn) comes from
  the same SQL, on ClickHouse's spans. The thread derived last is kept until a worker
  writes a new generation of it (`stamp`), so the page's next read of the same thread
  (a turn's spans, an LLM call's messages) does not derive it again.
- SQL runs on ClickHouse, read-only (``readonly = 1``: no writes, no table functions
  that read files or URLs), one SELECT statement at a time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from otel_threads.clickhouse.engine import Engine, EngineError
from otel_threads.clickhouse.filters import threads_where
from otel_threads.clickhouse.loading import Loader
from otel_threads.clickhouse.local import LocalStore
from otel_threads.query import PREVIEW_CHARS, order_by
from otel_threads.request import ThreadsQueryReq
from otel_threads.schemas import ThreadSchema, ThreadsQueryRes
from otel_threads.store.readonly_sql import arrow_stream

__all__ = ["ClickHouseReader", "readonly_sql"]

_PREVIEW = ", ".join(
    f"if(lengthUTF8({c}) > {PREVIEW_CHARS}, concat(leftUTF8({c}, {PREVIEW_CHARS - 1}), '…'), "
    f"{c}) AS {c}"
    for c in ("first_input", "last_output")
)
_THREAD_FIELDS = {f.name for f in dataclasses.fields(ThreadSchema)}


def readonly_sql(sql: str, limit: int | None = None, timeout_s: float | None = None) -> str:
    """``sql`` (one SELECT, WITH ... SELECT or UNION of them) run with ``readonly = 1``:
    anything else is a syntax error, and settings inside cannot lift it. At most
    ``limit`` rows, stopped after ``timeout_s`` seconds (``max_execution_time``)."""
    text = sql.strip().rstrip(";").rstrip()
    if not text:
        raise ValueError("no SQL statement given: give one, e.g. SELECT count() FROM threads")
    cut = "" if limit is None else f" LIMIT {int(limit)}"
    deadline = "" if timeout_s is None else f", max_execution_time = {float(timeout_s):g}"
    return f"SELECT * FROM (\n{text}\n){cut} SETTINGS readonly = 1{deadline}"


def naive_utc(value: Any) -> Any:
    """A time as the file store gives it: naive, in UTC."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _naive_table(table: pa.Table) -> pa.Table:
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            naive = pa.timestamp(field.type.unit)
            table = table.set_column(i, pa.field(field.name, naive), table.column(i).cast(naive))
    return table


class ClickHouseReader:
    """Reads one ClickHouse database that derive workers keep (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loader = Loader(engine)
        self._local: LocalStore | None = None
        #: (thread id, its `stamp`) of what `_local` holds derived
        self._derived: tuple[str, str] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        self.engine.close()

    def threads_query(
        self, req: ThreadsQueryReq, page_sort: list[tuple[str, str]] | None = None
    ) -> ThreadsQueryRes:
        """As `otel_threads.query.query_threads`, on ClickHouse."""
        cond, params = threads_where(req)
        order = order_by(req, page_sort)
        # (the request is checked: what ClickHouse refuses here is no mistake of the caller's,
        # so an EngineError goes up as it is)
        rows = self.engine.query(
            f"SELECT * REPLACE ({_PREVIEW}) FROM threads {cond} "
            f"ORDER BY {order}, thread_id LIMIT {int(req.limit)} OFFSET {int(req.offset)}",
            params,
        )
        total = self.engine.query(f"SELECT count() AS n FROM threads {cond}", params)
        threads = [
            ThreadSchema(**{k: naive_utc(v) for k, v in row.items() if k in _THREAD_FIELDS})
            for row in rows.to_pylist()
        ]
        return ThreadsQueryRes(threads, int(total.column("n")[0].as_py()))

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """``sql``, the caller's: what ClickHouse refuses is a ValueError (a 400)."""
        try:
            return self.engine.query(sql, params)
        except EngineError as exc:
            raise ValueError(str(exc)) from None

    def stamp(self, thread_id: str | None = None) -> str | None:
        """A stamp of the generations the derive workers wrote, of one thread or of all:
        it changes with every generation written. None when there is none. (EngineError
        when ClickHouse fails, as `thread_store`'s reads.)"""
        sql = (
            "SELECT toUnixTimestamp64Micro(max(written_at)) AS at, count() AS n "
            "FROM otel_threads_thread_gens"
        )
        if thread_id is None:
            rows = self.engine.query(sql)
        else:
            rows = self.engine.query(f"{sql} WHERE thread_id = {{t:String}}", {"t": thread_id})
        at, n = rows.column("at")[0].as_py(), rows.column("n")[0].as_py()
        return f"{at}.{n}" if n else None

    @contextmanager
    def thread_store(self, thread_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection on which ``thread_id``, read back from ClickHouse and
        derived alone, answers the file store's queries (one thread at a time; the one
        derived last stays until its `stamp` moves)."""
        with self._lock:
            if self._local is None:
                self._local = LocalStore()
            stamp = self.stamp(thread_id)
            if stamp is None or self._derived != (thread_id, stamp):
                self._derived = None
                spans, logs = self.loader.scope(set(), {thread_id})
                self._local.derive(spans, logs)
                if stamp is not None:
                    self._derived = (thread_id, stamp)
            yield self._local.con

    def forget(self) -> None:
        """Let go of the thread `thread_store` kept: the next read derives it again."""
        with self._lock:
            self._derived = None

    def sql(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """One read-only statement: (column names, rows)."""
        table = self.arrow(sql)
        columns = [c.to_pylist() for c in table.columns]
        return table.column_names, [
            [naive_utc(v) for v in row] for row in zip(*columns, strict=True)
        ]

    def arrow(self, sql: str, limit: int | None = None, timeout_s: float | None = None) -> pa.Table:
        """One read-only statement, whole (or its first ``limit`` rows), as an Arrow table
        (times naive UTC); stopped after ``timeout_s``."""
        return _naive_table(self._query(readonly_sql(sql, limit, timeout_s)))

    def arrow_stream(self, sql: str, max_bytes: int, timeout_s: float | None = None) -> bytes:
        """One read-only statement as an Arrow IPC stream (times naive UTC), read from
        ClickHouse a batch at a time: past ``max_bytes`` it stops there, a ValueError that
        says to narrow it (never a whole answer held first); stopped after ``timeout_s``."""
        batches = self.engine.batches(readonly_sql(sql, None, timeout_s))
        try:
            first = next(batches, None)
            if first is None:  # no batch, not even an empty one: the schema alone
                schema = self.arrow(sql, limit=0, timeout_s=timeout_s).schema
                return arrow_stream(schema, [], max_bytes)
            head = _naive_table(pa.Table.from_batches([first]))
            rest = (_naive_table(pa.Table.from_batches([b])) for b in batches)
            parts = itertools.chain([head], rest)
            return arrow_stream(head.schema, (b for t in parts for b in t.to_batches()), max_bytes)
        except EngineError as exc:
            raise ValueError(str(exc)) from None
        finally:
            batches.close()
