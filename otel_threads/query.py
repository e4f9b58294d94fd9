"""The threads query: request/response types and the SQL behind them.

`ThreadsClient` (client.py) runs these against a file or a collector's API; the
collector's API runs them against its own database. All of them select from the
views and never re-derive anything.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

__all__ = [
    "SORT_FIELDS",
    "SortBy",
    "ThreadDetail",
    "ThreadSchema",
    "ThreadsQueryReq",
    "ThreadsQueryRes",
    "TranscriptMessage",
    "TurnSchema",
    "query_thread",
    "query_threads",
]

#: Fields the threads list may be sorted by; anything else is a ValueError (HTTP 400).
SORT_FIELDS = ("thread_id", "turn_count", "start_time", "last_updated",
               "p50_turn_duration_ms", "p99_turn_duration_ms")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class SortBy:
    field: str = "last_updated"
    direction: str = "desc"

    def __post_init__(self) -> None:
        if self.field not in SORT_FIELDS:
            raise ValueError(
                f"cannot sort by {self.field!r}: choose one of {', '.join(SORT_FIELDS)}")
        if self.direction not in ("asc", "desc"):
            raise ValueError(f"sort direction must be 'asc' or 'desc', got {self.direction!r}")


def _as_datetime(value: Any, name: str) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, str):
        try:
            result = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{name} must be an ISO 8601 datetime, got {value!r}") from None
    else:
        raise ValueError(f"{name} must be a datetime or an ISO 8601 string, got {value!r}")
    if result is not None and result.tzinfo is not None:  # stored times are naive UTC
        result = result.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return result


@dataclass
class ThreadsQueryReq:
    """Which threads, in which order. Validated on construction (ValueError)."""

    project_id: str | None = None
    limit: int = 50
    offset: int = 0
    sort_by: list[SortBy] = field(default_factory=lambda: [SortBy()])
    sortable_datetime_after: dt.datetime | None = None
    sortable_datetime_before: dt.datetime | None = None
    thread_ids: list[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not (
                1 <= self.limit <= MAX_LIMIT):
            raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {self.limit!r}")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {self.offset!r}")
        sorts = []
        for s in self.sort_by or []:
            if isinstance(s, dict):
                unknown = set(s) - {"field", "direction"}
                if unknown:
                    raise ValueError(f"sort_by entries take field and direction, got {unknown}")
                s = SortBy(**s)
            elif not isinstance(s, SortBy):
                raise ValueError(f"sort_by entries must be SortBy or dicts, got {s!r}")
            sorts.append(s)
        self.sort_by = sorts or [SortBy()]
        self.sortable_datetime_after = _as_datetime(self.sortable_datetime_after,
                                                    "sortable_datetime_after")
        self.sortable_datetime_before = _as_datetime(self.sortable_datetime_before,
                                                     "sortable_datetime_before")
        if self.project_id is not None and not isinstance(self.project_id, str):
            raise ValueError(f"project_id must be a string, got {self.project_id!r}")
        if self.thread_ids is not None:
            if isinstance(self.thread_ids, str) or not all(
                    isinstance(t, str) for t in self.thread_ids):
                raise ValueError("thread_ids must be a list of strings")
            self.thread_ids = list(self.thread_ids)

    @classmethod
    def from_json(cls, body: Any) -> ThreadsQueryReq:
        """From a JSON object (the HTTP API's body); unknown fields are an error."""
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**body)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("sortable_datetime_after", "sortable_datetime_before"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out


def _rows_to(cls: type, cursor: duckdb.DuckDBPyConnection) -> list[Any]:
    names = [d[0] for d in cursor.description]
    known = {f.name for f in dataclasses.fields(cls)}
    return [cls(**{k: v for k, v in zip(names, row, strict=True) if k in known})
            for row in cursor.fetchall()]


_DATETIMES = frozenset({"start_time", "end_time", "last_updated"})


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """From JSON (the HTTP API): ISO strings back to datetimes; unknown keys ignored."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if f.name in _DATETIMES and isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThreadSchema:
        return _from_dict(cls, data)


@dataclass
class TurnSchema:
    """One row of the `turns` view."""

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
    error_span_count: int = 0
    has_error: bool = False
    is_running: bool = False
    service_name: str | None = None
    project: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnSchema:
        return _from_dict(cls, data)


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
class ThreadsQueryRes:
    threads: list[ThreadSchema]
    total: int


@dataclass
class ThreadDetail:
    thread: ThreadSchema
    turns: list[TurnSchema]
    transcript: list[TranscriptMessage]


def query_threads(con: duckdb.DuckDBPyConnection, req: ThreadsQueryReq) -> ThreadsQueryRes:
    """Run a threads query on a connection (read-only use)."""
    where, params = [], []
    if req.project_id is not None:
        where.append("project = ?")
        params.append(req.project_id)
    if req.thread_ids is not None:
        where.append("list_contains(?, thread_id)")
        params.append(req.thread_ids)
    if req.sortable_datetime_after is not None:  # active at or after the window start
        where.append("last_updated >= ?")
        params.append(req.sortable_datetime_after)
    if req.sortable_datetime_before is not None:  # started before the window end
        where.append("start_time <= ?")
        params.append(req.sortable_datetime_before)
    cond = f"WHERE {' AND '.join(where)}" if where else ""
    order = ", ".join(f"{s.field} {s.direction.upper()} NULLS LAST" for s in req.sort_by)
    cur = con.execute(
        f"SELECT * FROM threads {cond} ORDER BY {order}, thread_id LIMIT ? OFFSET ?",
        [*params, req.limit, req.offset])
    threads = _rows_to(ThreadSchema, cur)
    total = con.execute(f"SELECT count(*) FROM threads {cond}", params).fetchall()[0][0]
    return ThreadsQueryRes(threads, int(total))


def query_thread(con: duckdb.DuckDBPyConnection, thread_id: str) -> ThreadDetail | None:
    """One thread with its turns and transcript, or None when unknown."""
    threads = _rows_to(ThreadSchema, con.execute(
        "SELECT * FROM threads WHERE thread_id = ?", [thread_id]))
    if not threads:
        return None
    turns = _rows_to(TurnSchema, con.execute(
        "SELECT * FROM turns WHERE thread_id = ? ORDER BY turn_index", [thread_id]))
    transcript = _rows_to(TranscriptMessage, con.execute(
        "SELECT * FROM transcript WHERE thread_id = ? ORDER BY seq", [thread_id]))
    return ThreadDetail(threads[0], turns, transcript)
