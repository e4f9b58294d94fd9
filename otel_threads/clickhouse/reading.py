"""Reading threads from ClickHouse: what `ThreadsClient("clickhouse://...")` and
`otel-threads serve --clickhouse` answer, with the semantics of a DuckDB file.

- The threads list runs on ClickHouse, over the derived `threads` view and the views
  its filters read (`otel_threads.clickhouse.filters`: the same conditions).
- One thread's detail (its turns, transcript, forks, branches, errors, a turn's spans)
  is what the file store's own queries answer over that thread: its traces are read
  back (`Loader.scope`) into an in-memory store and derived there, so every detail the
  file gives (spans with their attributes, a branch through any turn) comes from the
  same SQL, on ClickHouse's spans. The store keeps the threads it read (up to
  `KEEP_SPANS` spans, then it is emptied): a thread is answered from it until a worker
  writes a new generation of it (`stamp`), and then only the traces whose pieces that
  generation wrote anew (new turns, late spans) are read back and derived, as a file
  derives what arrives.
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

__all__ = ["KEEP_SPANS", "ClickHouseReader", "readonly_sql"]

#: Spans a reader's store keeps at most: past it, it is emptied before the next thread
#: is read (the threads it held are read back whole when next asked for).
KEEP_SPANS = 500_000

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
        #: the threads `_local` holds: their `stamp` and their traces' pieces when read
        self._held: dict[str, tuple[str, dict[str, int]]] = {}
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
        derived, answers the file store's queries (one caller at a time; see the module
        docstring for what is kept)."""
        with self._lock:
            if self._local is None:
                self._local = LocalStore()
            stamp = self.stamp(thread_id)
            held = self._held.get(thread_id)
            if stamp is None:
                if held is not None:  # (gone from ClickHouse: nothing kept may answer)
                    self._forget()
            elif held is None or held[0] != stamp:
                try:
                    self._read(thread_id, stamp, held)
                except BaseException:
                    self._forget()  # (what the store holds may be half a read)
                    raise
            yield self._local.con

    def _read(self, thread_id: str, stamp: str, held: tuple[str, dict] | None) -> None:
        """Bring ``thread_id`` in the store up to its latest generation (``stamp``)."""
        assert self._local is not None
        if held is None and self._local.span_count() > KEEP_SPANS:
            self._forget()
        pieces = dict(
            self.engine.rows(
                "SELECT trace_id, piece FROM otel_threads_latest_traces "
                "WHERE thread_id = {t:String}",
                {"t": thread_id},
            )
        )
        others = set(self._held) - {thread_id}
        if held is None:  # every trace of it (and what their links reach)
            spans, logs = self.loader.scope(set(), {thread_id}, others)
        else:  # the traces a worker wrote anew since (new, late spans, resolved otherwise)
            changed = {t for t, piece in pieces.items() if held[1].get(t) != piece}
            spans, logs = self.loader.scope(changed, set(), others | {thread_id})
        self._local.add(spans, logs)
        self._held[thread_id] = (stamp, pieces)

    def _forget(self) -> None:
        if self._local is not None:
            self._local.reset()
        self._held.clear()

    def forget(self) -> None:
        """Let go of every thread `thread_store` kept: the next read derives it again."""
        with self._lock:
            self._forget()

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
