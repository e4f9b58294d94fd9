"""Reading threads from ClickHouse: what `ThreadsClient("clickhouse://...")` and
`otel-threads serve --clickhouse` answer, with the semantics of a DuckDB file.

- The threads list runs on ClickHouse, over the derived `threads` view and the views
  its filters read (`otel_threads.clickhouse.filters`: the same conditions).
- One thread's detail (its turns, transcript, forks, branches, errors, a turn's spans)
  is what the file store's own queries answer over that thread alone: its traces are
  read back (`Loader.scope`) into an in-memory store and derived there, so every detail
  the file gives (spans with their attributes, a branch through any turn) comes from
  the same SQL, on ClickHouse's spans.
- SQL runs on ClickHouse, read-only (``readonly = 1``: no writes, no table functions
  that read files or URLs), one SELECT statement at a time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
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
from otel_threads.query import PREVIEW_CHARS
from otel_threads.request import PAGE_SORT, ThreadsQueryReq
from otel_threads.schemas import ThreadSchema, ThreadsQueryRes

__all__ = ["ClickHouseReader", "readonly_sql"]

_PREVIEW = ", ".join(
    f"if(lengthUTF8({c}) > {PREVIEW_CHARS}, concat(leftUTF8({c}, {PREVIEW_CHARS - 1}), '…'), "
    f"{c}) AS {c}"
    for c in ("first_input", "last_output")
)
_THREAD_FIELDS = {f.name for f in dataclasses.fields(ThreadSchema)}


def readonly_sql(sql: str) -> str:
    """``sql`` (one SELECT, WITH ... SELECT or UNION of them) run with ``readonly = 1``:
    anything else is a syntax error, and settings inside cannot lift it."""
    text = sql.strip().rstrip(";").rstrip()
    if not text:
        raise ValueError("no SQL statement given: give one, e.g. SELECT count() FROM threads")
    return f"SELECT * FROM (\n{text}\n) SETTINGS readonly = 1"


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
        sorts = page_sort or [(s.field, s.direction) for s in req.sort_by]
        for name, direction in sorts:
            if name not in PAGE_SORT or direction not in ("asc", "desc"):
                raise ValueError(
                    f"cannot sort by {name!r} {direction!r}: choose one of "
                    f"{', '.join(PAGE_SORT)}, asc or desc"
                )
        order = ", ".join(f"{PAGE_SORT[n]} {d.upper()} NULLS LAST" for n, d in sorts)
        rows = self._query(
            f"SELECT * REPLACE ({_PREVIEW}) FROM threads {cond} "
            f"ORDER BY {order}, thread_id LIMIT {int(req.limit)} OFFSET {int(req.offset)}",
            params,
        )
        total = self._query(f"SELECT count() AS n FROM threads {cond}", params)
        threads = [
            ThreadSchema(**{k: naive_utc(v) for k, v in row.items() if k in _THREAD_FIELDS})
            for row in rows.to_pylist()
        ]
        return ThreadsQueryRes(threads, int(total.column("n")[0].as_py()))

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        try:
            return self.engine.query(sql, params)
        except EngineError as exc:
            raise ValueError(str(exc)) from None

    @contextmanager
    def thread_store(self, thread_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection on which ``thread_id``, read back from ClickHouse and
        derived alone, answers the file store's queries (one thread at a time)."""
        with self._lock:
            if self._local is None:
                self._local = LocalStore()
            spans, logs = self.loader.scope(set(), {thread_id})
            self._local.derive(spans, logs)
            yield self._local.con

    def sql(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """One read-only statement: (column names, rows)."""
        table = self.arrow(sql)
        columns = [c.to_pylist() for c in table.columns]
        return table.column_names, [
            [naive_utc(v) for v in row] for row in zip(*columns, strict=True)
        ]

    def arrow(self, sql: str) -> pa.Table:
        """One read-only statement, whole, as an Arrow table (times naive UTC)."""
        return _naive_table(self._query(readonly_sql(sql)))
