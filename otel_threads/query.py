"""The threads query: the SQL behind `ThreadsClient`, over the views.

`ThreadsClient` (client.py) runs these against a file or a collector's API; the
collector's API runs them against its own database. All of them select from the
views and never re-derive anything. The request and row types live in
otel_threads.schemas and are importable from here too; a thread's detail in pages
(`query_thread_page`) is otel_threads.paging.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import duckdb

from otel_threads.content_capture import thread_hints
from otel_threads.filters import ThreadFilter
from otel_threads.schemas import (
    MAX_LIMIT,
    PAGE_SORT,
    SORT_FIELDS,
    AnnotationSchema,
    ForkSchema,
    SortBy,
    ThreadDetail,
    ThreadPage,
    ThreadSchema,
    ThreadsQueryReq,
    ThreadsQueryRes,
    TranscriptMessage,
    TurnSchema,
)
from otel_threads.span_messages import call_spans
from otel_threads.store.scope import traces_only
from otel_threads.turn_errors import fill_errors

__all__ = [
    "MAX_LIMIT",
    "PAGE_SORT",
    "PREVIEW_CHARS",
    "SORT_FIELDS",
    "ForkSchema",
    "SortBy",
    "ThreadDetail",
    "ThreadFilter",
    "ThreadPage",
    "ThreadSchema",
    "ThreadsQueryReq",
    "ThreadsQueryRes",
    "TranscriptMessage",
    "TurnSchema",
    "branch_through",
    "one_statement",
    "order_by",
    "query_thread",
    "query_threads",
    "query_turn_spans",
    "thread_annotations",
    "threads_where",
]


def _rows_to(cls: type, cursor: duckdb.DuckDBPyConnection) -> list[Any]:
    names = [d[0] for d in cursor.description]
    known = {f.name for f in dataclasses.fields(cls)}
    return [
        cls(**{k: v for k, v in zip(names, row, strict=True) if k in known})
        for row in cursor.fetchall()
    ]


def branch_through(con: duckdb.DuckDBPyConnection, thread_id: str, turn_id: str) -> list[str]:
    """The turn ids of the branch through ``turn_id``, first to last: its ancestors,
    itself, and on down to the newest turn below it (the table macro
    ``branch_through``, sql/branch_through.sql). ValueError when it is not a turn of
    the thread."""
    path = [
        r[0]
        for r in con.execute(
            "SELECT turn_id FROM branch_through(?, ?) ORDER BY position", [thread_id, turn_id]
        ).fetchall()
    ]
    if not path:
        raise ValueError(f"through_turn {turn_id!r} is not a turn of this thread")
    return path


#: Longest first_input / last_output a threads list carries (a preview: the thread's
#: detail has the whole texts). Longer ones are cut and end with an ellipsis.
PREVIEW_CHARS = 500
_PREVIEW = ", ".join(
    f"CASE WHEN length({c}) > {PREVIEW_CHARS} THEN left({c}, {PREVIEW_CHARS - 1}) || '…' "
    f"ELSE {c} END AS {c}"
    for c in ("first_input", "last_output")
)


def threads_where(req: ThreadsQueryReq) -> tuple[str, list[Any]]:
    """The WHERE clause on the `threads` view that selects the threads ``req`` asks for
    (all of them: '' ), and its parameters, in order."""
    where, params = [], []
    if req.thread_id_contains:
        where.append("strpos(lower(thread_id), lower(?)) > 0")
        params.append(req.thread_id_contains)
    if req.project_id is not None:
        where.append("project = ?")
        params.append(req.project_id)
    if req.thread_ids is not None:
        where.append("thread_id = ANY(?::VARCHAR[])")
        params.append(req.thread_ids)
    if req.sortable_datetime_after is not None:  # active at or after the window start
        where.append("last_updated >= ?")
        params.append(req.sortable_datetime_after)
    if req.sortable_datetime_before is not None:  # started before the window end
        where.append("start_time <= ?")
        params.append(req.sortable_datetime_before)
    if req.filter is not None:
        conds, values = req.filter.where()
        where += conds
        params += values
    return (f"WHERE {' AND '.join(where)}" if where else ""), params


def order_by(
    req: ThreadsQueryReq, page_sort: list[tuple[str, str]] | None = None, *, key: str = "{}"
) -> str:
    """The ORDER BY terms (without the final thread_id) of a threads query: ``page_sort``
    (field, direction pairs of `PAGE_SORT`), else ``req.sort_by``; ValueError for a field
    or direction there is none of. The same SQL on DuckDB and ClickHouse; ``key`` is the
    form each sort expression takes (``{}``: as it is; `query_threads` says why DuckDB's
    is another)."""
    sorts = page_sort or [(s.field, s.direction) for s in req.sort_by]
    for name, direction in sorts:
        if name not in PAGE_SORT or direction not in ("asc", "desc"):
            raise ValueError(
                f"cannot sort by {name!r} {direction!r}: choose one of "
                f"{', '.join(PAGE_SORT)}, asc or desc"
            )
    return ", ".join(f"{key.format(PAGE_SORT[n])} {d.upper()} NULLS LAST" for n, d in sorts)


#: How `query_threads` gives DuckDB its sort keys: the same order, but not a bare column.
#: For ORDER BY a column ... LIMIT, DuckDB's Top-N pushes its running boundary into the
#: scan as a dynamic filter, and a scan with a filter waits while a checkpoint writes the
#: table (DuckDB 2.0.1; docs/repro/duckdb_checkpoint_reads.py): under sustained ingest,
#: where the collector checkpoints every few seconds, the threads list waited up to a
#: checkpoint's length. ``coalesce(x, x)`` keeps the Top-N and leaves the scan unfiltered
#: (the collector's store also turns off late materialization, another such filter). A
#: list with a filter of its own waits for the vacuum, one a minute, a fraction of a
#: second (otel_threads.store.checkpointing).
UNFILTERED_KEY = "coalesce({0}, {0})"


def query_threads(
    con: duckdb.DuckDBPyConnection,
    req: ThreadsQueryReq,
    page_sort: list[tuple[str, str]] | None = None,
) -> ThreadsQueryRes:
    """Run a threads query on a connection (read-only use). ``page_sort``, (field,
    direction) pairs of `PAGE_SORT`, replaces ``req.sort_by`` (the web page's list).
    first_input and last_output are previews of at most `PREVIEW_CHARS` characters."""
    cond, params = threads_where(req)
    order = order_by(req, page_sort, key=UNFILTERED_KEY)
    # a filter that reads the transcript, turns or attribute values counts its matches
    # in the scan that finds them (a second statement would scan again)
    counted = req.filter is not None and req.filter.scans()
    cur = con.execute(
        f"SELECT * REPLACE ({_PREVIEW}){', count(*) OVER () AS _total' if counted else ''} "
        f"FROM threads {cond} ORDER BY {order}, thread_id LIMIT ? OFFSET ?",
        [*params, req.limit, req.offset],
    )
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if counted and rows:
        total = rows[0][names.index("_total")]
    elif counted and req.offset == 0:  # nothing matched
        total = 0
    else:
        total = con.execute(f"SELECT count(*) FROM threads {cond}", params).fetchall()[0][0]
    known = {f.name for f in dataclasses.fields(ThreadSchema)}
    threads = [
        ThreadSchema(**{k: v for k, v in zip(names, row, strict=True) if k in known})
        for row in rows
    ]
    return ThreadsQueryRes(threads, int(total))


def query_thread(
    con: duckdb.DuckDBPyConnection, thread_id: str, through_turn: str | None = None
) -> ThreadDetail | None:
    """One thread with its turns, forks and transcript, or None when unknown.

    The transcript follows the thread's current branch (the one that ends at its
    newest turn), or the branch through ``through_turn`` (see `branch_through`).
    """
    if through_turn is not None and not isinstance(through_turn, str):
        raise TypeError(f"through_turn must be a turn id (str), got {through_turn!r}")
    threads = _rows_to(
        ThreadSchema, con.execute("SELECT * FROM threads WHERE thread_id = ?", [thread_id])
    )
    if not threads:
        return None
    turns = _rows_to(
        TurnSchema,
        con.execute("SELECT * FROM turns WHERE thread_id = ? ORDER BY turn_index", [thread_id]),
    )
    forks = (
        _rows_to(
            ForkSchema,
            con.execute(
                "SELECT * FROM forks WHERE thread_id = ? ORDER BY forked_at, parent_turn_id",
                [thread_id],
            ),
        )
        if threads[0].fork_count  # none: its turns need not be grouped
        else []
    )
    if through_turn is None:
        branch = [t.turn_id for t in turns if t.on_current_branch]
        transcript = _rows_to(
            TranscriptMessage,
            con.execute("SELECT * FROM transcript WHERE thread_id = ? ORDER BY seq", [thread_id]),
        )
    else:
        branch = branch_through(con, thread_id, through_turn.lower())
        transcript = _rows_to(
            TranscriptMessage,
            con.execute(
                "WITH rows AS MATERIALIZED (FROM transcript_branches WHERE thread_id = ?) "
                "SELECT *, row_number() OVER (ORDER BY thread_seq) AS seq FROM rows "
                "WHERE turn_id IS NULL OR turn_id = ANY(?::VARCHAR[]) ORDER BY thread_seq",
                [thread_id, branch],
            ),
        )
    _fill_io(con, thread_id, turns)
    fill_errors(con, thread_id, turns)
    index = {t.turn_id: t.turn_index for t in turns}
    for f in forks:
        f.parent_turn_index = index.get(f.parent_turn_id)
        f.child_turn_indexes = [index.get(c) for c in f.child_turn_ids]
    return ThreadDetail(
        threads[0],
        turns,
        transcript,
        forks,
        branch,
        None if through_turn is None else through_turn.lower(),
        content_hints=[] if transcript else thread_hints(con, thread_id, turns),
        annotations=thread_annotations(con, thread_id),
    )


def thread_annotations(
    con: duckdb.DuckDBPyConnection, thread_id: str, turn_ids: list[str] | None = None
) -> list[AnnotationSchema]:
    """The annotations of ``thread_id``: all of them, or (``turn_ids`` given) those of the
    whole thread and of those turns; by turn, then oldest first."""
    where = "true"
    params: list[Any] = [thread_id]
    if turn_ids is not None:
        where = "turn_id IS NULL OR turn_id = ANY(?::VARCHAR[])"
        params.append(turn_ids)
    try:
        # the thread looked up alone (an index lookup), its turns picked after
        cur = con.execute(
            "WITH mine AS MATERIALIZED (SELECT * FROM annotations WHERE thread_id = ?) "
            f"SELECT * FROM mine WHERE {where} "
            "ORDER BY turn_id NULLS FIRST, created_at, annotation_id",
            params,
        )
    except (duckdb.CatalogException, duckdb.InvalidInputException):
        # a file an older otel-threads wrote, read without being opened to write (so not
        # migrated): it has no annotations (and DuckDB looks for a Python object of the
        # name instead, an InvalidInputException)
        if con.execute(
            "SELECT 1 FROM duckdb_views() WHERE view_name = 'annotations' "
            "AND database_name = current_database()"
        ).fetchall():
            raise
        return []
    return _rows_to(AnnotationSchema, cur)


def _fill_io(con: duckdb.DuckDBPyConnection, thread_id: str, turns: list[TurnSchema]) -> None:
    """Each turn's first user message and last assistant message (whatever the branch)."""
    said = {
        t: (i, o)
        for t, i, o in con.execute(
            # the thread looked up alone (an index lookup), its turns picked after
            "WITH mine AS MATERIALIZED (SELECT turn_id, first_input, last_output FROM turn_io "
            "WHERE thread_id = ?) SELECT * FROM mine WHERE turn_id = ANY(?::VARCHAR[])",
            [thread_id, [t.turn_id for t in turns]],
        ).fetchall()
    }
    for t in turns:
        t.first_input, t.last_output = said.get(t.turn_id, (None, None))


def one_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Check that ``sql`` is one SQL statement: ValueError, one line, for none (empty,
    blank, only ``;``), for several, and for text that does not parse. Ad-hoc SQL runs
    one statement at a time from a file and over HTTP alike (`ThreadsClient.sql`,
    ``POST /sql``): several would answer only the last one's rows."""
    try:
        count = len(con.extract_statements(sql))
    except duckdb.Error as exc:
        raise ValueError(f"SQL does not parse: {exc}") from None
    if count == 0:
        raise ValueError("no SQL statement given: give one, e.g. SELECT count(*) FROM threads")
    if count > 1:
        raise ValueError(f"{count} SQL statements given: run one statement at a time")


#: The columns of a span in `query_turn_spans`.
_SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "service_name",
    "start_time",
    "end_time",
    "duration_ms",
    "status_code",
    "status_message",
    "attributes",
    "events",
    "resource_attributes",
    "scope_name",
)


def query_turn_spans(
    con: duckdb.DuckDBPyConnection, thread_id: str, turn_id: str
) -> list[dict[str, Any]] | None:
    """Every span of one turn, in start order, with its attributes and events (JSON
    values decoded), or None when the thread has no such turn. A span's parent is in
    the list unless the turn's tree is incomplete or crosses services. An LLM span has
    ``llm_call_span_id``: the span of the LLM call it is part of (itself, or the inner
    span of its nest; `otel_threads.span_messages.query_span_messages` has its
    messages); None for the others. ``con`` must be a cursor of its own."""
    rows = con.execute(
        "SELECT trace_id, span_id FROM span_threads WHERE thread_id = ? AND turn_id = ?",
        [thread_id, turn_id],
    ).fetchall()
    if not rows:
        return None
    members = set(rows)
    traces = sorted({t for t, _ in rows})  # a turn is one trace, seldom more
    calls = call_spans(con, traces)
    out = []
    with traces_only(con, traces):  # (the spans of these traces alone, by their numbers)
        spans = con.execute(
            f"SELECT {', '.join(_SPAN_COLUMNS)} FROM spans ORDER BY start_time_unix_nano, span_id"
        ).fetchall()
    for row in spans:
        span = dict(zip(_SPAN_COLUMNS, row, strict=True))
        if (span["trace_id"], span["span_id"]) in members:
            for key in ("attributes", "events", "resource_attributes"):
                if isinstance(span[key], str):
                    span[key] = json.loads(span[key])
            span["llm_call_span_id"] = calls.get((span["trace_id"], span["span_id"]))
            out.append(span)
    out.sort(key=lambda sp: (sp["start_time"] or dt.datetime.min, sp["span_id"]))
    return out
