"""The threads query's conditions in ClickHouse's SQL: `query.threads_where` and
`ThreadFilter.where`, the same conditions over the same views, for a store on ClickHouse.

The two must agree: tests/test_clickhouse_reading.py runs every filter against a DuckDB
file and against ClickHouse holding the same spans.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from otel_threads.filters import TOOL_ATTRIBUTES, ThreadFilter, _attribute_text, _like_escaped
from otel_threads.request import ThreadsQueryReq

__all__ = ["attribute_hash", "threads_where"]


def attribute_hash(key: str, value: str) -> int:
    """The hash under which a thread keeps an attribute value (derive_thread_attributes)."""
    return int(
        duckdb.execute("SELECT md5_number_lower(? || chr(31) || ?)", [key, value]).fetchone()[0]
    )


class _Where:
    def __init__(self) -> None:
        self.conds: list[str] = []
        self.params: dict[str, Any] = {}

    def param(self, value: Any, kind: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{kind}}}"

    def add(self, cond: str) -> None:
        self.conds.append(cond)

    def with_attribute(self, key: str, value: str) -> str:
        h = self.param(attribute_hash(key, value), "UInt64")
        return f"SELECT thread_id FROM thread_attributes WHERE has(attribute_hashes, {h})"


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat(sep=" ")


def threads_where(req: ThreadsQueryReq) -> tuple[str, dict[str, Any]]:
    """The WHERE clause on ClickHouse's `threads` view for ``req`` ('' for all threads)
    and its parameters (ClickHouse ``{name:Type}`` placeholders)."""
    w = _Where()
    if req.thread_id_contains:
        p = w.param(req.thread_id_contains, "String")
        w.add(f"positionCaseInsensitiveUTF8(thread_id, {p}) > 0")
    if req.project_id is not None:
        w.add(f"project = {w.param(req.project_id, 'String')}")
    if req.thread_ids is not None:
        w.add(f"thread_id IN {w.param(list(req.thread_ids), 'Array(String)')}")
    time = "DateTime64(6, 'UTC')"
    if req.sortable_datetime_after is not None:
        w.add(f"last_updated >= {w.param(_utc_text(req.sortable_datetime_after), time)}")
    if req.sortable_datetime_before is not None:
        w.add(f"start_time <= {w.param(_utc_text(req.sortable_datetime_before), time)}")
    if req.filter is not None:
        _filter(w, req.filter)
    return (f"WHERE {' AND '.join(w.conds)}" if w.conds else ""), w.params


def _filter(w: _Where, f: ThreadFilter) -> None:
    if f.text is not None:
        role = f" AND role = {w.param(f.role, 'String')}" if f.role is not None else ""
        w.add(
            "thread_id IN (SELECT thread_id FROM transcript WHERE "
            f"positionCaseInsensitiveUTF8(content, {w.param(f.text, 'String')}) > 0{role})"
        )
    if f.has_error is not None:
        w.add("error_turn_count > 0" if f.has_error else "error_turn_count = 0")
    if f.ended is not None:
        w.add("ended" if f.ended else "NOT coalesce(ended, false)")
    if f.tool is not None:
        tool = w.param(f.tool, "String")
        by_span = " UNION ALL ".join(w.with_attribute(key, f.tool) for key in TOOL_ATTRIBUTES)
        w.add(
            "thread_id IN (SELECT thread_id FROM transcript WHERE tool_calls IS NOT NULL AND "
            "has(arrayMap(c -> JSONExtractString(c, 'name'), "
            f"JSONExtractArrayRaw(ifNull(tool_calls, ''))), {tool}) UNION ALL {by_span})"
        )
    if f.model is not None:
        pattern = w.param(_like_escaped(f.model).replace("*", "%"), "String")
        w.add(f"arrayExists(m -> m ILIKE {pattern}, models)")
    if f.user_id is not None:
        w.add(
            "thread_id IN (SELECT thread_id FROM turns WHERE user_id = "
            f"{w.param(f.user_id, 'String')})"
        )
    if f.project is not None:
        w.add(f"project = {w.param(f.project, 'String')}")
    if f.service_name is not None:
        w.add(f"thread_id IN ({w.with_attribute('service.name', f.service_name)})")
    for name, op, column, kind in (
        ("min_turns", ">=", "turn_count", "Int64"),
        ("max_turns", "<=", "turn_count", "Int64"),
        ("min_cost_usd", ">=", "cost_usd", "Float64"),
        ("max_cost_usd", "<=", "cost_usd", "Float64"),
    ):
        value = getattr(f, name)
        if value is not None:
            w.add(f"{column} {op} {w.param(value, kind)}")
    if f.annotation is not None:
        name, sep, label = f.annotation.partition("=")
        cond = f"name = {w.param(name, 'String')}"
        if sep:
            cond += f" AND label = {w.param(label, 'String')}"
        w.add(f"thread_id IN (SELECT thread_id FROM annotations WHERE {cond})")
    for key, value in (f.attributes or {}).items():
        w.add(f"thread_id IN ({w.with_attribute(key, _attribute_text(value))})")
