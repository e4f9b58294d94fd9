"""The threads query's request: which threads, in which order, validated on
construction (`ThreadsQueryReq`, `SortBy`); `otel_threads.schemas` has the rows it
answers with, and re-exports these."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from otel_threads.filters import ThreadFilter
from otel_threads.json_out import parse_utc, utc_iso

__all__ = ["MAX_LIMIT", "PAGE_SORT", "SORT_FIELDS", "SortBy", "ThreadsQueryReq"]

#: Fields the threads list may be sorted by; anything else is a ValueError (HTTP 400).
SORT_FIELDS = (
    "thread_id",
    "turn_count",
    "start_time",
    "last_updated",
    "p50_turn_duration_ms",
    "p99_turn_duration_ms",
    "llm_call_count",
    "input_tokens",
    "output_tokens",
    "error_turn_count",
    "fork_count",
    "cost_usd",
    "annotation_count",
)
MAX_LIMIT = 1000
#: What the web page's list may be sorted by (GET /ui/threads): every column it shows.
#: The threads query itself keeps to SORT_FIELDS. Each maps to its SQL expression.
PAGE_SORT = {
    **{f: f for f in SORT_FIELDS},
    "total_tokens": "coalesce(input_tokens, 0) + coalesce(output_tokens, 0)",
    "first_input": "first_input",
    "last_output": "last_output",
    "span_count": "span_count",
    "user_id": "user_id",
    "project": "project",
}


@dataclass(frozen=True)
class SortBy:
    field: str = "last_updated"
    direction: str = "desc"

    def __post_init__(self) -> None:
        if self.field not in SORT_FIELDS:
            raise ValueError(
                f"cannot sort by {self.field!r}: choose one of {', '.join(SORT_FIELDS)}"
            )
        if self.direction not in ("asc", "desc"):
            raise ValueError(f"sort direction must be 'asc' or 'desc', got {self.direction!r}")


def _as_datetime(value: Any, name: str) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, str):
        try:
            return parse_utc(value)
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
    #: only threads whose id contains this text (case-insensitive)
    thread_id_contains: str | None = None
    #: only threads that meet these conditions (a ThreadFilter, or its JSON object)
    filter: ThreadFilter | None = None

    def __post_init__(self) -> None:
        if (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int)
            or not (1 <= self.limit <= MAX_LIMIT)
        ):
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
        self.sortable_datetime_after = _as_datetime(
            self.sortable_datetime_after, "sortable_datetime_after"
        )
        self.sortable_datetime_before = _as_datetime(
            self.sortable_datetime_before, "sortable_datetime_before"
        )
        if self.project_id is not None and not isinstance(self.project_id, str):
            raise ValueError(f"project_id must be a string, got {self.project_id!r}")
        if self.thread_id_contains is not None and (
            not isinstance(self.thread_id_contains, str) or len(self.thread_id_contains) > 256
        ):
            raise ValueError("thread_id_contains must be a string of at most 256 characters")
        if self.thread_ids is not None:
            if isinstance(self.thread_ids, str) or not all(
                isinstance(t, str) for t in self.thread_ids
            ):
                raise ValueError("thread_ids must be a list of strings")
            self.thread_ids = list(self.thread_ids)
        if self.filter is not None:
            self.filter = ThreadFilter.from_json(self.filter)
            if self.filter.is_empty():
                self.filter = None

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
                out[key] = utc_iso(out[key])
        out["filter"] = self.filter.to_json() if self.filter is not None else None
        return out
