"""Why turns failed: `fill_errors` gives each turn with an error its `TurnError`, read
from its spans, for a page of a thread's detail (one query, whatever the turns)."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from otel_threads.schemas import ERROR_TEXT_CHARS, TurnError, TurnSchema

__all__ = ["exception_of", "fill_errors"]

#: The failing span of each turn asked for: among its spans with status ERROR, one that
#: recorded an exception first, then the deepest (where the error arose; its ancestors
#: fail with it), then the first to end. A substring test finds the exception events
#: without parsing every span's events (they are stored as compact JSON).
_FAILING = """
SELECT t.turn_id, s.span_id, s.name, s.status_message, s.events,
       count(*) OVER (PARTITION BY t.turn_id) AS error_span_count
FROM span_threads t
JOIN spans_raw s ON s.trace_id = t.trace_id AND s.span_id = t.span_id
WHERE t.thread_id = ? AND t.turn_id = ANY(?::VARCHAR[]) AND s.status_code = 'ERROR'
QUALIFY row_number() OVER (
    PARTITION BY t.turn_id
    ORDER BY contains(s.events::VARCHAR, '"name":"exception"') DESC, t.depth DESC,
             s.end_time_unix_nano NULLS LAST, s.span_id) = 1
"""


def _text(value: Any) -> str | None:
    """An attribute value as text, at most `ERROR_TEXT_CHARS` long (None for none)."""
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > ERROR_TEXT_CHARS:
        return text[: ERROR_TEXT_CHARS - 1] + "…"
    return text


def exception_of(events: Any) -> dict[str, Any] | None:
    """The attributes of the last ``exception`` event in a span's events (its JSON
    text or the decoded list), or None when it has none."""
    if isinstance(events, str):
        try:
            events = json.loads(events)
        except ValueError:
            return None
    if not isinstance(events, list):
        return None
    found = None
    for event in events:
        if isinstance(event, dict) and event.get("name") == "exception":
            attributes = event.get("attributes")
            found = attributes if isinstance(attributes, dict) else {}
    return found


def fill_errors(con: duckdb.DuckDBPyConnection, thread_id: str, turns: list[TurnSchema]) -> None:
    """Set ``error`` on each of ``turns`` that has one (``has_error``)."""
    failing = [t for t in turns if t.has_error]
    if not failing:
        return
    rows = con.execute(_FAILING, [thread_id, [t.turn_id for t in failing]]).fetchall()
    found = {}
    for turn_id, span_id, name, status_message, events, count in rows:
        exception = exception_of(events) or {}
        found[turn_id] = TurnError(
            span_id=span_id,
            span_name=name,
            type=_text(exception.get("exception.type")),
            message=_text(exception.get("exception.message")) or _text(status_message),
            stacktrace=_text(exception.get("exception.stacktrace")),
            error_span_count=int(count),
        )
    for t in failing:
        t.error = found.get(t.turn_id)
