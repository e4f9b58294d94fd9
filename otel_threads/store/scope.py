"""The views over a few traces only: `traces_only`; over one thread's transcript only:
`thread_only`.

The GenAI views (``llm_calls``, ``messages`` and those under them) parse the store's
spans as they are read; asked for one span's messages they would still plan and scan
the whole store (seconds on a store of a million spans). Inside `traces_only`, TEMP
tables of the views' inputs shadow the store's for the connection, as the derivation
does (otel_threads.store.scoped), so a view reads the spans of those traces alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import duckdb

from otel_threads.store.trace_numbers import lookup

__all__ = ["SHARED", "thread_only", "traces_only"]

#: The tables and views the GenAI views read, each shadowed by a TEMP table of the rows
#: of the traces in scope (looked up by their trace numbers, which the tables are indexed
#: by: otel_threads.store.trace_numbers; ``span_threads`` is the derived table behind the
#: view of that name).
_INPUTS = (("spans_raw", "spans_raw"), ("logs", "logs"), ("span_threads", "span_threads_mat"))


#: The views under ``llm_calls`` and ``messages`` that both read: `traces_only` with
#: ``shared=True`` evaluates them once, in this order (each reads those before it).
#: Planning the GenAI views costs more than running them on a trace or two, and each
#: of the two plans these again.
SHARED = (
    "genai_llm_spans",
    "genai_spans",
    "genai_calls",
    "genai_span_meta",
    "genai_message_sources",
)


def _file_schema(con: duckdb.DuckDBPyConnection) -> str:
    """The file's own schema, named through its catalog (TEMP tables do not shadow it)."""
    name = con.execute("SELECT current_database()").fetchall()[0][0]
    return '"' + name.replace('"', '""') + '".main'


@contextlib.contextmanager
def _temp_tables(con: duckdb.DuckDBPyConnection) -> Iterator[Callable[..., None]]:
    """Yields ``make(temp, select, params=())``, which makes TEMP table ``temp`` of
    ``select`` (``{db}`` in it names the file's own schema, which the TEMP tables do not
    shadow); every table made is dropped on leaving."""
    db = _file_schema(con)
    made: list[str] = []

    def make(temp: str, select: str, params: Sequence[object] = ()) -> None:
        con.execute(f"DROP TABLE IF EXISTS temp.{temp}")
        made.append(temp)
        con.execute(f"CREATE TEMP TABLE {temp} AS {select.format(db=db)}", list(params))

    try:
        yield make
    finally:
        for temp in reversed(made):
            con.execute(f"DROP TABLE IF EXISTS temp.{temp}")


@contextlib.contextmanager
def traces_only(
    con: duckdb.DuckDBPyConnection, traces: list[str], shared: bool = False
) -> Iterator[None]:
    """For the length of the block, every view read on ``con`` sees the spans and log
    records of ``traces`` and nothing else; with ``shared``, the views in `SHARED` are
    evaluated once, into TEMP tables of their name (what a block that reads both
    ``llm_calls`` and ``messages`` wants). ``con`` must be a cursor of its own (TEMP
    tables belong to a connection); they are dropped on leaving."""
    with _temp_tables(con) as make:
        numbers = sorted(lookup(con, traces, f"{_file_schema(con)}.trace_numbers").values())
        in_numbers = f"trace_n IN ({', '.join(map(str, numbers)) or 'NULL'})"
        for temp, table in _INPUTS:
            # (span_threads stands in for the view of that name, without the number)
            columns = "* EXCLUDE (trace_n)" if temp == "span_threads" else "*"
            make(temp, f"SELECT {columns} FROM {{db}}.{table} WHERE {in_numbers}")
        for view in SHARED if shared else ():
            make(view, f"SELECT * FROM {{db}}.{view}")
        yield


@contextlib.contextmanager
def thread_only(con: duckdb.DuckDBPyConnection, thread_id: str) -> Iterator[None]:
    """For the length of the block, ``transcript_mat`` on ``con`` is a TEMP table of
    the rows of ``thread_id`` alone, which the views a thread's page reads
    (``transcript``, ``transcript_branches``, ``turn_io``) read instead of the
    store's: the thread is looked up once (by its index, or for a long thread by a scan
    of the table), not once for each of the page's four reads of it. ``con`` must be a
    cursor of its own (TEMP tables belong to a connection)."""
    with _temp_tables(con) as make:
        make("transcript_mat", "SELECT * FROM {db}.transcript_mat WHERE thread_id = ?", [thread_id])
        yield
