"""`ClickHouseReads`: the query API's reads (`otel_threads.reads_backend.ReadsBackend`) on a
store on ClickHouse, what ``otel-threads serve --clickhouse URL`` answers with.

- The threads list is ClickHouse's (`ClickHouseReader.threads_query`: the same filters
  and sorts). Its ETag, and a thread's, come from the generations the derive workers
  wrote (`ClickHouseReader.stamp`): they change when a worker writes.
- A thread's pages, a turn's spans and an LLM call's messages are the file store's own
  query functions, on the thread derived alone (`ClickHouseReader.thread_store`).
- ``/sql`` is ClickHouse's SQL, read-only (``readonly = 1``: no writes, no ``file()`` or
  ``url()``), one statement, cut to the rows and bytes a file's ``/sql`` gives and
  stopped after as long (otel_threads.store.readonly_sql). ``/arrow`` takes no
  ``params`` here (ClickHouse's placeholders are not DuckDB's ``?``), and reads its answer
  a batch at a time, refused once past a file's limit (`ClickHouseReader.arrow_stream`).
- Reads never wait for derivation: the derive workers (or the one `serve --derive` runs
  beside the API) write, and a read answers with what they wrote. And the API writes
  nothing: annotations and evaluations reach ClickHouse over OTLP, as
  ``gen_ai.evaluation.result`` events (`writes_refused`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from otel_threads.clickhouse.engine import EngineError
from otel_threads.clickhouse.reading import ClickHouseReader, naive_utc
from otel_threads.paging import query_thread_page
from otel_threads.query import query_turn_spans
from otel_threads.schemas import ThreadDetail, ThreadsQueryReq, ThreadsQueryRes
from otel_threads.span_messages import query_span_messages
from otel_threads.store.errors import StoreClosed
from otel_threads.store.health import Fault
from otel_threads.store.readonly_sql import (
    ARROW_MAX_BYTES,
    SQL_MAX_BYTES,
    SQL_MAX_ROWS,
    SQL_TIMEOUT_S,
    cut_rows,
)

__all__ = ["WRITES_REFUSED", "ClickHouseReads"]

#: What the API's write routes answer on ClickHouse.
WRITES_REFUSED = (
    "this API reads ClickHouse, where annotations and evaluations arrive over OTLP "
    "(gen_ai.evaluation.result events); to annotate through the API, use a DuckDB file's "
    "collector"
)


def _unavailable(exc: EngineError) -> StoreClosed:
    """A ClickHouse failure in a read that has no mistake of the caller to blame: a 503."""
    return StoreClosed(f"ClickHouse did not answer: {exc}")


class ClickHouseReads:
    """The API's reads on one ClickHouse database (see the module docstring)."""

    writes_refused: str | None = WRITES_REFUSED

    def __init__(self, reader: ClickHouseReader) -> None:
        self.reader = reader

    def close(self) -> None:
        self.reader.close()

    @property
    def fault(self) -> Fault | None:
        try:
            self.reader.engine.query("SELECT 1")
        except EngineError as exc:
            return Fault("unreachable", str(exc))
        return None

    def sync(self, timeout: float) -> bool:
        return True  # (the derive workers derive, elsewhere: nothing to wait for here)

    def threads_version(self) -> str | None:
        try:
            return self.reader.stamp()
        except EngineError as exc:
            raise _unavailable(exc) from None

    def thread_version(self, thread_id: str) -> str | None:
        try:
            return self.reader.stamp(thread_id)
        except EngineError as exc:
            raise _unavailable(exc) from None

    def threads(
        self, req: ThreadsQueryReq, page_sort: list[tuple[str, str]] | None = None
    ) -> ThreadsQueryRes:
        try:
            return self.reader.threads_query(req, page_sort)
        except EngineError as exc:
            raise _unavailable(exc) from None

    @contextmanager
    def _thread(self, thread_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        try:
            with self.reader.thread_store(thread_id) as con:
                yield con
        except EngineError as exc:
            raise _unavailable(exc) from None

    def thread_page(
        self, thread_id: str, through_turn: str | None = None, **paging: Any
    ) -> ThreadDetail | None:
        with self._thread(thread_id) as con:
            return query_thread_page(con, thread_id, through_turn, **paging)

    def turn_spans(self, thread_id: str, turn_id: str) -> list[dict[str, Any]] | None:
        with self._thread(thread_id) as con:
            return query_turn_spans(con, thread_id, turn_id)

    def span_messages(self, thread_id: str, turn_id: str, span_id: str) -> dict[str, Any] | None:
        with self._thread(thread_id) as con:
            return query_span_messages(con, thread_id, turn_id, span_id)

    def sql(self, sql: str) -> dict[str, Any]:
        table = self.reader.arrow(sql, limit=SQL_MAX_ROWS + 1, timeout_s=SQL_TIMEOUT_S)
        batches = (
            zip(*[[naive_utc(v) for v in c.to_pylist()] for c in batch.columns], strict=True)
            for batch in table.to_batches(256)
        )
        rows, truncated = cut_rows(batches, SQL_MAX_ROWS, SQL_MAX_BYTES)
        return {"columns": table.column_names, "rows": rows, "truncated": truncated}

    def arrow(self, sql: str, params: Any = None) -> bytes:
        if params:
            raise ValueError(
                "on ClickHouse, /arrow takes no params: write the values into the SQL "
                "(ClickHouse's own)"
            )
        return self.reader.arrow_stream(sql, ARROW_MAX_BYTES, timeout_s=SQL_TIMEOUT_S)
