"""A thread's detail in pages: `query_thread_page`, what ``GET /threads/{id}`` and
`ThreadsClient.thread` read, so a thread of 100,000 turns is never one answer."""

from __future__ import annotations

from typing import Any

import duckdb

from otel_threads.content_capture import thread_hints
from otel_threads.query import _fill_io, _rows_to, branch_through, thread_annotations
from otel_threads.schemas import (
    ForkSchema,
    ThreadDetail,
    ThreadPage,
    ThreadSchema,
    TranscriptMessage,
    TurnSchema,
)
from otel_threads.store.scope import thread_only
from otel_threads.turn_errors import fill_errors

__all__ = [
    "MAX_TRANSCRIPT_LIMIT",
    "MAX_TURN_LIMIT",
    "TRANSCRIPT_LIMIT",
    "TURN_LIMIT",
    "query_thread_page",
]


#: Turns in a page of a thread's detail unless asked otherwise, and the most asked for.
TURN_LIMIT = 200
MAX_TURN_LIMIT = 1000
#: Transcript rows in a page unless asked otherwise, and the most asked for. A page ends
#: early, at a turn, rather than hold more; one turn with more rows is cut within.
TRANSCRIPT_LIMIT = 5000
MAX_TRANSCRIPT_LIMIT = 20_000


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> int:
    return int(con.execute(sql, params).fetchall()[0][0])


def _int_param(name: str, value: Any, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return value


def query_thread_page(
    con: duckdb.DuckDBPyConnection,
    thread_id: str,
    through_turn: str | None = None,
    *,
    turn_offset: int = 0,
    turn_limit: int = TURN_LIMIT,
    transcript_after: int | None = None,
    transcript_limit: int = TRANSCRIPT_LIMIT,
) -> ThreadDetail | None:
    """A page of one thread's detail, or None when the thread is unknown.

    The page holds the turns from ``turn_offset`` (0-based, in turn_index order, off
    the branch too), at most ``turn_limit`` of them; the transcript rows of those
    turns on the branch shown (in seq order; rows of no turn come with the last
    turns), at most ``transcript_limit``: the page ends at the last turn whose rows
    all fit, and a first turn with more rows than that is cut within, to go on with
    ``transcript_after`` (the last seq received; the page then holds that one turn).
    ``branch`` lists the page's turns on that branch, ``forks`` the forks whose
    parent or competing turns are in the page. `ThreadDetail.page` says the totals
    and the parameters of the next page. ValueError for a parameter out of range.
    Each turn with an error has ``error`` (`otel_threads.turn_errors`); the first page
    of a branch without messages has ``content_hints`` (`otel_threads.content_capture`).
    """
    if through_turn is not None and not isinstance(through_turn, str):
        raise TypeError(f"through_turn must be a turn id (str), got {through_turn!r}")
    turn_offset = _int_param("turn_offset", turn_offset, 0)
    turn_limit = _int_param("turn_limit", turn_limit, 1, MAX_TURN_LIMIT)
    transcript_limit = _int_param("transcript_limit", transcript_limit, 1, MAX_TRANSCRIPT_LIMIT)
    if transcript_after is not None:
        transcript_after = _int_param("transcript_after", transcript_after, 0)
    threads = _rows_to(
        ThreadSchema, con.execute("SELECT * FROM threads WHERE thread_id = ?", [thread_id])
    )
    if not threads:
        return None
    with thread_only(con, thread_id):
        return _page(
            con,
            threads[0],
            through_turn,
            turn_offset,
            turn_limit,
            transcript_after,
            transcript_limit,
        )


def _page(
    con: duckdb.DuckDBPyConnection,
    thread: ThreadSchema,
    through_turn: str | None,
    turn_offset: int,
    turn_limit: int,
    transcript_after: int | None,
    transcript_limit: int,
) -> ThreadDetail:
    """`query_thread_page` of a thread that exists (``thread``)."""
    thread_id = thread.thread_id
    ((turns_total, branch_count, transcript_count),) = con.execute(
        "SELECT (SELECT count(*) FROM turns WHERE thread_id = $thread), "
        "(SELECT count(*) FILTER (WHERE on_current_branch) FROM turns WHERE thread_id = $thread), "
        "(SELECT count(*) FROM transcript WHERE thread_id = $thread)",
        {"thread": thread_id},
    ).fetchall()
    # continuing one turn's transcript: that turn alone
    limit = 1 if transcript_after is not None else turn_limit
    # turn_index numbers a thread's turns 1..n: a range, not a sort of every turn
    turns = _rows_to(
        TurnSchema,
        con.execute(
            "SELECT * FROM turns WHERE thread_id = ? AND turn_index > ? AND turn_index <= ? "
            "ORDER BY turn_index",
            [thread_id, turn_offset, turn_offset + limit],
        ),
    )
    reaches_end = turn_offset + len(turns) >= turns_total
    after = -1 if transcript_after is None else transcript_after
    if through_turn is None:
        on_branch = {t.turn_id for t in turns if t.on_current_branch}
        branch_total, transcript_total = branch_count, transcript_count
        rows_sql = "SELECT * FROM transcript WHERE thread_id = $thread"
        params: dict[str, Any] = {"thread": thread_id}
    else:
        through_turn = through_turn.lower()
        whole_branch = branch_through(con, thread_id, through_turn)
        on_branch = set(whole_branch) & {t.turn_id for t in turns}
        branch_total = len(whole_branch)
        rows_sql = (
            "WITH thread_rows AS MATERIALIZED "
            "(FROM transcript_branches WHERE thread_id = $thread) "
            "SELECT *, row_number() OVER (ORDER BY thread_seq) AS seq FROM thread_rows "
            "WHERE turn_id IS NULL OR turn_id = ANY($branch::VARCHAR[])"
        )
        params = {"thread": thread_id, "branch": whole_branch}
        transcript_total = _count(con, f"{_rows(rows_sql)} SELECT count(*) FROM rows", params)
    branch = [t.turn_id for t in turns if t.turn_id in on_branch]
    # the page's groups of rows, in turn order: each turn, then the rows of no turn
    counts = dict(
        con.execute(
            f"{_rows(rows_sql)} SELECT turn_id, count(*) FROM rows "
            "WHERE (turn_id = ANY($turns::VARCHAR[]) OR ($end AND turn_id IS NULL)) "
            "AND seq > $after GROUP BY turn_id",
            {**params, "turns": branch, "end": reaches_end, "after": after},
        ).fetchall()
    )
    groups: list[str | None] = [t.turn_id for t in turns]
    if reaches_end and None in counts:
        groups.append(None)
    kept, rows_kept = 0, 0
    for key in groups:
        n = counts.get(key, 0)
        if kept and rows_kept + n > transcript_limit:
            break
        kept += 1
        rows_kept += n
    groups = groups[:kept]
    kept_turns = [g for g in groups if g is not None]
    turns = turns[: len(kept_turns)]
    branch = [b for b in branch if b in set(kept_turns)]
    transcript = _rows_to(
        TranscriptMessage,
        con.execute(
            f"{_rows(rows_sql)} SELECT * FROM rows WHERE (turn_id = ANY($turns::VARCHAR[]) "
            "OR ($orphans AND turn_id IS NULL)) AND seq > $after ORDER BY seq LIMIT $limit",
            {
                **params,
                "turns": branch,
                "orphans": None in groups,
                "after": after,
                "limit": transcript_limit,
            },
        ),
    )
    cut_within = rows_kept > transcript_limit  # one group, more rows than the limit
    next_offset = turn_offset + len(turns)
    nxt: dict[str, int] | None = None
    if cut_within:
        nxt = {"turn_offset": turn_offset, "transcript_after": int(transcript[-1].seq)}
    elif next_offset < turns_total or (reaches_end and None in counts and None not in groups):
        nxt = {"turn_offset": next_offset}
    _fill_io(con, thread_id, turns)
    fill_errors(con, thread_id, turns)
    # why there are no messages: said on the first page (a thread's pages share it)
    hints = (
        thread_hints(con, thread_id, turns)
        if transcript_total == 0 and turn_offset == 0 and transcript_after is None
        else []
    )
    # (fork_count is the thread's forks: none, and the turns are not grouped at all)
    forks = _page_forks(con, thread_id, turns) if thread.fork_count else []
    page = ThreadPage(
        turn_offset=turn_offset,
        turn_limit=turn_limit,
        transcript_limit=transcript_limit,
        turns_total=turns_total,
        branch_total=branch_total,
        transcript_total=transcript_total,
        transcript_after=transcript_after,
        next=nxt,
    )
    return ThreadDetail(
        thread,
        turns,
        transcript,
        forks,
        branch,
        through_turn,
        page,
        truncated=nxt is not None or turn_offset > 0 or transcript_after is not None,
        content_hints=hints,
        annotations=thread_annotations(con, thread_id, [t.turn_id for t in turns]),
    )


def _page_forks(
    con: duckdb.DuckDBPyConnection, thread_id: str, turns: list[TurnSchema]
) -> list[ForkSchema]:
    """The thread's forks whose parent or a competing turn is one of ``turns``, with
    the turn_index of each (where a paging client finds them). Only those forks'
    parents are grouped: the filter on the group key reaches the turns."""
    parents = sorted(
        {t.turn_id for t in turns} | {t.parent_turn_id for t in turns if t.parent_turn_id}
    )
    forks = _rows_to(
        ForkSchema,
        con.execute(
            "WITH mine AS MATERIALIZED (SELECT * FROM forks WHERE thread_id = ?) "
            "SELECT * FROM mine WHERE parent_turn_id = ANY(?::VARCHAR[]) "
            "ORDER BY forked_at, parent_turn_id",
            [thread_id, parents],
        ),
    )
    if forks:
        wanted = sorted(
            {f.parent_turn_id for f in forks} | {c for f in forks for c in f.child_turn_ids}
        )
        index = dict(
            con.execute(
                "WITH mine AS MATERIALIZED (SELECT turn_id, turn_index FROM turns "
                "WHERE thread_id = ?) SELECT * FROM mine WHERE turn_id = ANY(?::VARCHAR[])",
                [thread_id, wanted],
            ).fetchall()
        )
        for f in forks:
            f.parent_turn_index = index.get(f.parent_turn_id)
            f.child_turn_indexes = [index.get(c) for c in f.child_turn_ids]
    return forks


def _rows(rows_sql: str) -> str:
    """The thread's transcript rows as a CTE read once by the statement. (On a page,
    the transcript views already read the thread's rows alone: `thread_only`. Elsewhere a
    lookup of one thread is kept alone in a MATERIALIZED CTE, as `_page_forks` does:
    DuckDB uses an index only for a scan with one filter, and only for up to 2,048 rows
    or 0.1% of the table; a filter beside the thread's would make it a scan of the
    whole table, whose zone maps skip little when thread ids are random.)"""
    return f"WITH rows AS MATERIALIZED ({rows_sql})"
