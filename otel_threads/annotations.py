"""Annotations made by people and programs: `add_annotation`, `delete_annotation`,
`thread_annotations` (the `annotations` view holds them with those that arrive over
OTLP, which the derivation keeps: sql/derive_annotations.sql).

These run on a connection that may write (a file nobody else holds, or the collector's
own store); `ThreadsClient.annotate` and the API's ``POST /threads/{id}/annotations``
call them. The store keeps the thread's count and version (otel_threads.store.annotating),
so the page's cached copies of the thread and of the list are read again.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from typing import Any

import duckdb

from otel_threads.query import thread_annotations
from otel_threads.store import annotating

__all__ = [
    "MAX_EXPLANATION_CHARS",
    "MAX_NAME_CHARS",
    "AnnotationNotFoundError",
    "add_annotation",
    "delete_annotation",
    "thread_annotations",
    "validate_annotation",
]

#: Longest name, label, source or author of an annotation.
MAX_NAME_CHARS = 256
#: Longest explanation (a note) of an annotation.
MAX_EXPLANATION_CHARS = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TURN_ID = re.compile(r"^[0-9a-fA-F]{16}$")


class AnnotationNotFoundError(KeyError):
    """No annotation that can be deleted has this id (an unknown id, or one that came
    over OTLP, which is the app's own record)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _short(field: str, value: Any, limit: int, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError(f"{field} must be a text of 1-{limit} characters, got {value!r:.80}")
    if limit == MAX_NAME_CHARS and _CONTROL.search(value):
        raise ValueError(f"{field} must not hold control characters, got {value!r:.80}")
    return value


def validate_annotation(
    name: Any,
    label: Any = None,
    score: Any = None,
    explanation: Any = None,
    turn_id: Any = None,
    author: Any = None,
) -> dict[str, Any]:
    """The annotation's fields, checked: ValueError (one line, naming the field) for a
    bad one. A name, and at least one of label, score and explanation."""
    out: dict[str, Any] = {
        "name": _short("name", name, MAX_NAME_CHARS, required=True),
        "label": _short("label", label, MAX_NAME_CHARS),
        "explanation": _short("explanation", explanation, MAX_EXPLANATION_CHARS),
        "author": _short("author", author, MAX_NAME_CHARS),
    }
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        raise ValueError(f"score must be a finite number, got {score!r:.80}")
    out["score"] = None if score is None else float(score)
    if out["label"] is None and out["score"] is None and out["explanation"] is None:
        raise ValueError(f"annotation {name!r} needs a label, a score or an explanation")
    if turn_id is not None and (not isinstance(turn_id, str) or not _TURN_ID.match(turn_id)):
        raise ValueError(f"turn_id must be a turn's id (16 hex digits), got {turn_id!r:.80}")
    out["turn_id"] = None if turn_id is None else turn_id.lower()
    return out


def add_annotation(
    con: duckdb.DuckDBPyConnection,
    thread_id: str,
    name: str,
    *,
    label: str | None = None,
    score: float | None = None,
    explanation: str | None = None,
    turn_id: str | None = None,
    source: str = "api",
    author: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Record an annotation of ``thread_id`` (of its turn ``turn_id`` when given); returns
    its id. KeyError when the thread (or the turn in it) is unknown, ValueError for a bad
    field. Runs in the caller's transaction when one is open."""
    fields = validate_annotation(name, label, score, explanation, turn_id, author)
    _short("source", source, MAX_NAME_CHARS, required=True)
    if not con.execute("SELECT 1 FROM threads WHERE thread_id = ?", [thread_id]).fetchall():
        raise KeyError(f"no thread {thread_id!r}")
    trace_id = span_id = None
    if fields["turn_id"] is not None:
        found = con.execute(
            "SELECT trace_id, span_id FROM turns WHERE thread_id = ? AND turn_id = ?",
            [thread_id, fields["turn_id"]],
        ).fetchall()
        if not found:
            raise KeyError(f"no turn {fields['turn_id']!r} in thread {thread_id!r}")
        trace_id, span_id = found[0]
    annotation_id = str(uuid.uuid4())
    row = {
        **fields,
        "annotation_id": annotation_id,
        "thread_id": thread_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "source": source,
        "created_at": now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
    }
    annotating.record(con, [row])
    return annotation_id


def delete_annotation(con: duckdb.DuckDBPyConnection, annotation_id: str) -> str:
    """Delete an annotation made through the API (or by an evaluator); returns its
    thread's id. `AnnotationNotFoundError` for an unknown id and for one that came over
    OTLP (the app's own record: it would come back with its spans)."""
    if not isinstance(annotation_id, str):
        raise AnnotationNotFoundError(f"no annotation {annotation_id!r}")
    thread_id = annotating.remove(con, annotation_id)
    if thread_id is None:
        otlp = con.execute(
            "SELECT 1 FROM annotations WHERE annotation_id = ? AND source = 'otlp'",
            [annotation_id],
        ).fetchall()
        raise AnnotationNotFoundError(
            f"annotation {annotation_id!r} came over OTLP: only annotations made through "
            "the API can be deleted"
            if otlp
            else f"no annotation {annotation_id!r}"
        )
    return thread_id
