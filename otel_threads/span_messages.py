"""An LLM span as a conversation: `query_span_messages` (the LLM call a span is part of,
with its messages) and `call_spans` (which spans of some traces are LLM calls), both
over the views of those traces only (`otel_threads.store.scope.traces_only`)."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from otel_threads.content_capture import hint
from otel_threads.store.scope import traces_only

__all__ = ["call_spans", "query_span_messages"]

#: The columns of a message in `query_span_messages` (those of the `messages` view that
#: say something of one call's message).
_MESSAGE_COLUMNS = (
    "direction",
    "position",
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "finish_reason",
    "name",
    "source_span_id",
)


def call_spans(con: duckdb.DuckDBPyConnection, traces: list[str]) -> dict[tuple[str, str], str]:
    """(trace_id, span_id) of every LLM span in ``traces`` -> the span id of the LLM
    call it is part of (itself, or the innermost LLM span of its nest: `genai_calls`).
    ``con`` must be a cursor of its own."""
    if not traces:
        return {}
    with traces_only(con, traces):
        rows = con.execute("SELECT trace_id, span_id, call_span_id FROM genai_calls").fetchall()
    return {(t, s): c for t, s, c in rows}


def query_span_messages(
    con: duckdb.DuckDBPyConnection, thread_id: str, turn_id: str, span_id: str
) -> dict[str, Any] | None:
    """The LLM call that span ``span_id`` of a turn is part of (its `llm_calls` row:
    model, parameters read, tokens, convention), and that call's messages (the
    `messages` view, input then output, in position order), or None when the thread has
    no such turn or the turn no such span. For a span that is no LLM call, ``llm_call``
    is None and ``messages`` empty; for a call without messages ``content_hint`` says
    why and what to set (`otel_threads.content_capture`). ``con`` must be a cursor of
    its own."""
    traces = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT trace_id FROM span_threads "
            "WHERE thread_id = ? AND turn_id = ? AND span_id = ?",
            [thread_id, turn_id, span_id],
        ).fetchall()
    ]
    if not traces:
        return None
    trace_id = traces[0]
    answer: dict[str, Any] = {
        "thread_id": thread_id,
        "turn_id": turn_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "llm_call": None,
        "messages": [],
        "content_hint": None,
    }
    call = call_spans(con, [trace_id]).get((trace_id, span_id))
    if call is None:  # no LLM span
        return answer
    with traces_only(con, [trace_id], shared=True):
        cur = con.execute(
            "SELECT * FROM llm_calls WHERE trace_id = ? AND span_id = ?", [trace_id, call]
        )
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        if not rows:  # (an LLM span of no call: genai_calls and llm_calls agree)
            return answer
        answer["llm_call"] = dict(zip(names, rows[0], strict=True))
        cur = con.execute(
            f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM messages "
            "WHERE trace_id = ? AND span_id = ? "
            "ORDER BY direction = 'output', position",
            [trace_id, call],
        )
        messages = [dict(zip(_MESSAGE_COLUMNS, row, strict=True)) for row in cur.fetchall()]
        scope = con.execute(
            "SELECT scope_name FROM spans_raw WHERE trace_id = ? AND span_id = ?", [trace_id, call]
        ).fetchall()
    for m in messages:
        if isinstance(m["tool_calls"], str):  # DuckDB hands JSON over as text
            m["tool_calls"] = json.loads(m["tool_calls"])
    answer["messages"] = messages
    if not messages:
        answer["content_hint"] = hint(
            answer["llm_call"].get("convention"), scope[0][0] if scope else None
        )
    return answer
