"""Read-only SQL for `POST /sql`: one statement in a READ ONLY transaction, with a
deadline that interrupts it, a cap on the tables it may plan, and an answer cut to a
number of rows and bytes (the API listener, otel_threads.collector.api, serves it)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import duckdb

from otel_threads.query import one_statement
from otel_threads.store.errors import StoreClosed

__all__ = [
    "SQL_CONCURRENCY",
    "SQL_MAX_BYTES",
    "SQL_MAX_ROWS",
    "SQL_MAX_TABLES",
    "SQL_QUEUE_S",
    "SQL_TIMEOUT_S",
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
    one_statement(con, sql)
    tables = _table_refs(con, sql)
    if tables > SQL_MAX_TABLES:
        raise ValueError(
            f"the statement names {tables} tables; /sql plans at most "
            f"{SQL_MAX_TABLES} (planning is not interruptible)"
        )
    timer = threading.Timer(timeout_s, con.interrupt)
    con.execute("BEGIN TRANSACTION READ ONLY")
    timer.start()
    rows: list[list[Any]] = []
    truncated, size = False, 0
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description or []]
        while not truncated:
            batch = cur.fetchmany(256)
            if not batch:
                break
            for row in batch:
                size += sum(len(str(v)) for v in row)
                if len(rows) == max_rows or size > max_bytes:
                    truncated = True
                    break
                rows.append(list(row))
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
    return {"columns": columns, "rows": rows, "truncated": truncated}


def _table_refs(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """How many tables (and table functions) a SELECT names, from DuckDB's own parse
    (other statements: 0, the READ ONLY transaction judges them)."""
    try:
        tree = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0]
    except duckdb.Error:
        return 0
    return tree.count('"type":"BASE_TABLE"') + tree.count('"type":"TABLE_FUNCTION"')
