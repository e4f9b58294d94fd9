"""Read-only SQL for `POST /sql` and `POST /arrow`: one statement in a READ ONLY
transaction, with a deadline that interrupts it and a cap on the tables it may plan;
/sql's answer (JSON rows) is cut to a number of rows and bytes, /arrow's (an Arrow IPC
stream) is whole or refused (the API listener, otel_threads.collector.api, serves them,
through `otel_threads.store.reads.Reads`). `cut_rows` and `arrow_stream` shape a store on
ClickHouse's answers the same way (otel_threads.clickhouse.serving)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from otel_threads.query import one_statement
from otel_threads.store.errors import StoreClosed

__all__ = [
    "ARROW_MAX_BYTES",
    "SQL_CONCURRENCY",
    "SQL_MAX_BYTES",
    "SQL_MAX_ROWS",
    "SQL_MAX_TABLES",
    "SQL_QUEUE_S",
    "SQL_TIMEOUT_S",
    "arrow_stream",
    "cut_rows",
    "run_readonly_arrow",
    "run_readonly_sql",
]

#: Most rows `/sql` returns; the answer says when it cut.
SQL_MAX_ROWS = 10_000
#: Most bytes of values (as text) `/sql` returns; rows past it are cut, and said so.
SQL_MAX_BYTES = 16 << 20
#: Most tables one `/sql` statement may name: DuckDB's planner does not stop when
#: interrupted, and a statement joining hundreds of tables plans for minutes.
SQL_MAX_TABLES = 64
#: Longest a `/sql` statement may run before it is interrupted.
SQL_TIMEOUT_S = 30.0
#: Most /sql statements running at once (each may use DuckDB's whole --memory-limit,
#: spilling past it); the next one waits up to SQL_QUEUE_S, then gets a 503.
SQL_CONCURRENCY = 2
SQL_QUEUE_S = 5.0
#: Largest answer `/arrow` gives (whole: it is never cut); larger ones are refused.
ARROW_MAX_BYTES = 256 << 20
ARROW_BATCH_ROWS = 8192


def _checked(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """ValueError unless ``sql`` is one statement naming at most `SQL_MAX_TABLES` tables."""
    one_statement(con, sql)
    tables = _table_refs(con, sql)
    if tables > SQL_MAX_TABLES:
        raise ValueError(
            f"the statement names {tables} tables; /sql plans at most "
            f"{SQL_MAX_TABLES} (planning is not interruptible)"
        )


@contextlib.contextmanager
def _read_only(con: duckdb.DuckDBPyConnection, sql: str, timeout_s: float) -> Iterator[None]:
    """A READ ONLY transaction for ``sql`` (checked first), interrupted after
    ``timeout_s``; DuckDB's errors come out as ValueError (StoreClosed when the store
    closing stopped it)."""
    _checked(con, sql)
    timer = threading.Timer(timeout_s, con.interrupt)
    con.execute("BEGIN TRANSACTION READ ONLY")
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        if not timer.finished.is_set():  # interrupted by the store closing, not the timer
            raise StoreClosed("the query was stopped: the collector is stopping") from None
        raise ValueError(f"the query ran longer than {timeout_s:g}s and was stopped") from None
    except duckdb.Error as exc:
        raise ValueError(str(exc)) from None
    finally:
        timer.cancel()
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")


def run_readonly_sql(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    max_rows: int = SQL_MAX_ROWS,
    timeout_s: float = SQL_TIMEOUT_S,
    max_bytes: int = SQL_MAX_BYTES,
) -> dict[str, Any]:
    """One statement in a READ ONLY transaction; ValueError for anything refused. The
    answer holds at most ``max_rows`` rows and about ``max_bytes`` of values;
    ``truncated`` says when it was cut."""
    with _read_only(con, sql, timeout_s):
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description or []]

        def batches() -> Iterator[list[tuple]]:
            while batch := cur.fetchmany(256):
                yield batch

        rows, truncated = cut_rows(batches(), max_rows, max_bytes)
    return {"columns": columns, "rows": rows, "truncated": truncated}


def cut_rows(
    batches: Iterable[Sequence[Sequence[Any]]], max_rows: int, max_bytes: int
) -> tuple[list[list[Any]], bool]:
    """The rows of ``batches`` (read no further than needed), at most ``max_rows`` of them
    and about ``max_bytes`` of values (as text); and whether that cut any."""
    rows: list[list[Any]] = []
    size = 0
    for batch in batches:
        for row in batch:
            size += sum(len(str(v)) for v in row)
            if len(rows) == max_rows or size > max_bytes:
                return rows, True
            rows.append(list(row))
    return rows, False


def _params(params: Any) -> list[Any]:
    if params is None:
        return []
    if not isinstance(params, list):
        raise ValueError("params must be a JSON list")
    for value in params:
        items = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, str | int | float | bool) for v in items):
            raise ValueError(
                "each of params must be a string, number, boolean, null or a list of them"
            )
    return params


def run_readonly_arrow(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Any = None,
    timeout_s: float = SQL_TIMEOUT_S,
    max_bytes: int = ARROW_MAX_BYTES,
) -> bytes:
    """One statement (with ``params`` for its ``?``) in a READ ONLY transaction, whole, as
    an Arrow IPC stream; ValueError for anything refused, or an answer past
    ``max_bytes`` (nothing is cut: the caller narrows the statement)."""
    values = _params(params)
    with _read_only(con, sql, timeout_s):
        reader = con.sql(sql, params=values or None).to_arrow_reader(ARROW_BATCH_ROWS)
        return arrow_stream(reader.schema, reader, max_bytes)


def arrow_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch], max_bytes: int) -> bytes:
    """``batches`` as one Arrow IPC stream; ValueError (saying to narrow the statement) as
    soon as it passes ``max_bytes``: an answer is whole or refused, never cut."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as stream:
        for batch in batches:
            stream.write_batch(batch)
            if sink.tell() > max_bytes:
                raise ValueError(
                    f"the answer is larger than {max_bytes >> 20} MiB; narrow it "
                    "(fewer threads or columns)"
                )
    return sink.getvalue().to_pybytes()


def _table_refs(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """How many tables (and table functions) a SELECT names, from DuckDB's own parse
    (other statements: 0, the READ ONLY transaction judges them)."""
    try:
        tree = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
    except duckdb.Error:
        return 0
    return tree.count('"type":"BASE_TABLE"') + tree.count('"type":"TABLE_FUNCTION"')
