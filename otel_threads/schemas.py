"""The threads query's types: the rows it answers with, one dataclass per view row, and
(from `otel_threads.request`, re-exported here) the request. `otel_threads.query` runs
them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from otel_threads.json_out import parse_utc
from otel_threads.request import MAX_LIMIT, PAGE_SORT, SORT_FIELDS, SortBy, ThreadsQueryReq

__all__ = [
    "MAX_LIMIT",
    "PAGE_SORT",
    "SORT_FIELDS",
    "AnnotationSchema",
    "ContentHint",
    "ForkSchema",
    "SortBy",
    "ThreadDetail",
    "ThreadPage",
    "ThreadSchema",
    "ThreadsQueryReq",
    "ThreadsQueryRes",
    "TranscriptMessage",
    "TurnError",
    "TurnSchema",
]

_DATETIMES = frozenset(
    {"start_time", "end_time", "last_updated", "forked_at", "created_at", "ended_at", "reopened_at"}
)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """From JSON (the HTTP API): ISO strings back to datetimes (naive UTC, as stored);
    unknown keys ignored."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if f.name in _DATETIMES and isinstance(value, str):
                value = parse_utc(value)
            out[f.name] = value
    return cls(**out)


@dataclass
class ThreadSchema:
    """One row of the `threads` view."""

    thread_id: str
    project: str | None = None
    turn_count: int = 0
    start_time: dt.datetime | None = None
    last_updated: dt.datetime | None = None
    first_turn_id: str | None = None
    last_turn_id: str | None = None
    p50_turn_duration_ms: float | None = None
    p99_turn_duration_ms: float | None = None
    span_count: int = 0
    llm_call_count: int = 0
    error_turn_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    first_input: str | None = None
    last_output: str | None = None
    fork_count: int = 0
    running_turn_count: int = 0
    duration_ms: float | None = None
    total_turn_duration_ms: float | None = None
    user_id: str | None = None
    models: list[str] = field(default_factory=list)
    service_name: str | None = None
    cycle_turn_count: int = 0
    #: the thread's LLM calls' known costs, summed (None when no call's cost is known)
    cost_usd: float | None = None
    #: its LLM calls of no known cost (an unknown model, or no tokens reported)
    unpriced_call_count: int = 0
    #: annotations of the thread, its turns and its spans (the `annotations` view)
    annotation_count: int = 0
    #: the app said the thread ended (`ThreadContext.end`) and no turn came after
    ended: bool = False
    #: when it said so (None when not ended)
    ended_at: dt.datetime | None = None
    #: a turn came after an end: the start of the first turn after the latest end
    reopened_at: dt.datetime | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadSchema:
        return _from_dict(cls, data)


@dataclass
class TurnError:
    """Why a turn failed: its failing span (the deepest span with status ERROR, one that
    recorded an exception first) and what it says. ``type``, ``message`` and
    ``stacktrace`` come from the span's last ``exception`` event (exception.type,
    exception.message, exception.stacktrace); without one, ``message`` is the span's
    status message. Texts longer than `ERROR_TEXT_CHARS` are cut and end with an
    ellipsis (the span itself keeps them whole)."""

    span_id: str
    span_name: str | None = None
    type: str | None = None
    message: str | None = None
    stacktrace: str | None = None
    #: spans of the turn with status ERROR (this one among them)
    error_span_count: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnError:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


#: The longest text a `TurnError` carries (a stack trace can be megabytes).
ERROR_TEXT_CHARS = 20_000


@dataclass
class TurnSchema:
    """One row of the `turns` view. In a thread's detail, a turn with an error also
    has ``error`` (a `TurnError`), read from its spans."""

    thread_id: str
    turn_id: str
    turn_index: int
    trace_id: str | None = None
    span_id: str | None = None
    name: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    duration_ms: float | None = None
    status_code: str | None = None
    status_message: str | None = None
    previous_turn_id: str | None = None
    span_count: int = 0
    llm_call_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    first_input: str | None = None  #: the turn's first user message (in the detail)
    last_output: str | None = None  #: the turn's last assistant message (in the detail)
    error_span_count: int = 0
    has_error: bool = False
    is_running: bool = False
    service_name: str | None = None
    project: str | None = None
    parent_turn_id: str | None = None
    link_status: str | None = None
    on_current_branch: bool = True
    #: the turn's LLM calls' known costs, summed (None when no call's cost is known)
    cost_usd: float | None = None
    #: its LLM calls of no known cost
    unpriced_call_count: int = 0
    #: when the turn said its thread ended (`ThreadContext.end`); None when it did not
    ended_at: dt.datetime | None = None
    error: TurnError | None = None  #: why it failed (in the detail; None without an error)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnSchema:
        turn = _from_dict(cls, data)
        if isinstance(turn.error, dict):
            turn.error = TurnError.from_dict(turn.error)
        return turn


@dataclass
class ForkSchema:
    """One row of the `forks` view: a turn that two or more turns answer."""

    thread_id: str
    parent_turn_id: str
    child_count: int
    child_turn_ids: list[str]
    child_start_times: list[dt.datetime]
    current_child_turn_id: str | None = None
    forked_at: dt.datetime | None = None
    #: turn_index of the parent and of each child (in a paged answer: where to find them)
    parent_turn_index: int | None = None
    child_turn_indexes: list[int | None] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForkSchema:
        fork = _from_dict(cls, data)
        fork.child_start_times = [
            parse_utc(v) if isinstance(v, str) else v for v in fork.child_start_times
        ]
        return fork


@dataclass
class TranscriptMessage:
    """One row of the `transcript` view."""

    thread_id: str
    seq: int
    turn_id: str | None = None
    role: str | None = None
    content: str | None = None
    tool_calls: Any = None
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tool_calls, str):  # DuckDB hands JSON over as text
            self.tool_calls = json.loads(self.tool_calls)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptMessage:
        return _from_dict(cls, data)


@dataclass
class AnnotationSchema:
    """One row of the `annotations` view: a judgement of a thread (``turn_id`` None), a
    turn or a span. ``source``: 'api' (the API, the command line, the web page), 'otlp'
    (the GenAI evaluation event) or an evaluator's name (`otel-threads eval`)."""

    annotation_id: str
    thread_id: str
    name: str
    turn_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    label: str | None = None
    score: float | None = None
    explanation: str | None = None
    source: str = "api"
    author: str | None = None
    created_at: dt.datetime | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnotationSchema:
        return _from_dict(cls, data)


@dataclass
class ThreadsQueryRes:
    threads: list[ThreadSchema]
    total: int


@dataclass
class ThreadPage:
    """Where a page of a thread's detail lies in the whole (`query_thread_page`).

    ``next`` holds the parameters that ask for the following page (``turn_offset``,
    and ``transcript_after`` when one turn's transcript goes on), or None on the last."""

    turn_offset: int
    turn_limit: int
    transcript_limit: int
    turns_total: int  #: turns in the thread
    branch_total: int  #: turns on the branch shown
    transcript_total: int  #: transcript rows of the branch shown
    transcript_after: int | None = None
    next: dict[str, int] | None = None
    more: bool = False  #: whether a page follows (``next`` is set)

    def __post_init__(self) -> None:
        self.more = self.next is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadPage:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ContentHint:
    """Why a thread's LLM calls carry no messages, and what to set so that they do: one
    per kind of call seen (`otel_threads.content_capture` says which)."""

    convention: str | None  #: the calls' `llm_calls` convention
    scope_name: str | None  #: their instrumentation scope
    llm_call_count: int  #: calls of this kind among those looked at
    producer: str  #: what made them, as its users know it
    setting: (
        str  #: what to set, e.g. ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY``
    )
    note: str  #: why there is no content, and what else is needed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContentHint:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ThreadDetail:
    """One thread. ``turns``: all of them, in start order. ``transcript``: the
    conversation along ``branch`` (turn ids, first to last): the current branch, or
    the branch through ``through_turn`` when one was asked for. ``forks``: the
    thread's forks (the `forks` view).

    A page of it (`query_thread_page`, what ``GET /threads/{id}`` answers) holds a run
    of the turns, the transcript rows and branch ids of those turns, and the forks
    they take part in; ``page`` says where it lies and ``truncated`` that it is not
    the whole thread. ``version`` changes whenever the thread is derived anew.
    ``content_hints``: when the branch shown has no messages although its turns made
    LLM calls, why and what to set (else empty). ``annotations``: those of the thread
    and of the turns shown (the `annotations` view), by turn, then oldest first."""

    thread: ThreadSchema
    turns: list[TurnSchema]
    transcript: list[TranscriptMessage]
    forks: list[ForkSchema] = field(default_factory=list)
    branch: list[str] = field(default_factory=list)
    through_turn: str | None = None
    page: ThreadPage | None = None
    truncated: bool = False
    version: str | None = None
    content_hints: list[ContentHint] = field(default_factory=list)
    annotations: list[AnnotationSchema] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadDetail:
        page = data.get("page")
        return ThreadDetail(
            ThreadSchema.from_dict(data["thread"]),
            [TurnSchema.from_dict(t) for t in data["turns"]],
            [TranscriptMessage.from_dict(m) for m in data["transcript"]],
            [ForkSchema.from_dict(f) for f in data.get("forks", [])],
            list(data.get("branch", [])),
            data.get("through_turn"),
            ThreadPage.from_dict(page) if page else None,
            bool(data.get("truncated", False)),
            data.get("version"),
            [ContentHint.from_dict(h) for h in data.get("content_hints") or []],
            [AnnotationSchema.from_dict(a) for a in data.get("annotations") or []],
        )
