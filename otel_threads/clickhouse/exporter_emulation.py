"""The Collector's ``clickhouseexporter`` emulated: what it inserts for our rows (tests).

contrib v0.151.0, ``exporter_traces.go`` / ``exporter_logs.go``: for the spans / log
records a ``SPAN_SCHEMA`` / ``LOG_SCHEMA`` table holds, the rows the exporter would insert
into otel_traces / otel_logs (``TRACE_COLUMNS`` / ``LOG_COLUMNS``), every attribute as
``pcommon.Value.AsString()`` (``exporter_values.as_string``), maps sorted by key, enums
spelled as the current pdata or (``enum_style="legacy"``) as older exporters do.
``otel_threads.clickhouse.exporter_rows`` reads such rows back.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from otel_threads.clickhouse.engine import Engine
from otel_threads.clickhouse.exporter_schema import (
    LOG_COLUMNS,
    LOGS_TABLE,
    TRACE_COLUMNS,
    TRACES_TABLE,
    exporter_ddl,
)
from otel_threads.clickhouse.exporter_values import ENUM_STYLES, as_string, exporter_map
from otel_threads.otlp.values import EVENT_NAME_KEY

__all__ = ["insert_as_exporter", "to_exporter_logs", "to_exporter_spans"]

_STR = pa.string()
_NS_UTC = pa.timestamp("ns", tz="UTC")
_MAP = pa.map_(pa.string(), pa.string())
_U64 = 1 << 64


def _json_column(table: pa.Table, name: str) -> list:
    return [None if v is None else json.loads(v) for v in table.column(name).to_pylist()]


def _service_names(resources: list) -> list[str]:
    # internal.GetServiceName: the resource's service.name as AsString, else ''
    return [as_string(r["service.name"]) if "service.name" in r else "" for r in resources]


def _fill(table: pa.Table, name: str) -> pa.Array:
    return pc.fill_null(table.column(name).combine_chunks(), "")


def _ids(values: list) -> list:
    # traceutil.TraceIDToHexOrEmptyString / SpanIDToHexOrEmptyString: all zeros -> ''
    return [v if v and v.strip("0") else "" for v in values]


def to_exporter_spans(table: pa.Table, enum_style: str = "current") -> pa.Table:
    """A ``SPAN_SCHEMA`` table -> the otel_traces rows the exporter inserts for the same
    spans (``TRACE_COLUMNS``), enums spelled as ``enum_style`` ("current" or "legacy")."""
    if enum_style not in ENUM_STYLES:
        raise ValueError(f"enum_style must be one of {sorted(ENUM_STYLES)}, got {enum_style!r}")
    kinds, codes = ENUM_STYLES[enum_style]
    resources = _json_column(table, "resource_attributes")
    events = [e or [] for e in _json_column(table, "events")]
    links = [link or [] for link in _json_column(table, "links")]
    start = table.column("start_time_unix_nano").to_pylist()
    end = table.column("end_time_unix_nano").to_pylist()
    columns = {
        "Timestamp": pa.array(start, pa.int64()).cast(_NS_UTC),
        "TraceId": _fill(table, "trace_id"),
        "SpanId": _fill(table, "span_id"),
        "ParentSpanId": _fill(table, "parent_span_id"),
        "TraceState": _fill(table, "trace_state"),
        "SpanName": _fill(table, "name"),
        "SpanKind": [kinds.get(k, kinds["UNSPECIFIED"]) for k in table.column("kind").to_pylist()],
        "ServiceName": _service_names(resources),
        "ResourceAttributes": pa.array([exporter_map(r) for r in resources], _MAP),
        "ScopeName": _fill(table, "scope_name"),
        "ScopeVersion": _fill(table, "scope_version"),
        "SpanAttributes": pa.array(
            [exporter_map(a) for a in _json_column(table, "attributes")], _MAP
        ),
        # uint64 arithmetic in Go: an unset end (0) wraps around
        "Duration": pa.array(
            [(e - s) % _U64 for s, e in zip(start, end, strict=True)], pa.uint64()
        ),
        "StatusCode": [
            codes.get(c, codes["UNSET"]) for c in table.column("status_code").to_pylist()
        ],
        "StatusMessage": _fill(table, "status_message"),
        "Events.Timestamp": pa.array(
            [[e["time_unix_nano"] for e in row] for row in events], pa.list_(pa.int64())
        ).cast(pa.list_(_NS_UTC)),
        "Events.Name": pa.array([[e["name"] for e in row] for row in events], pa.list_(_STR)),
        "Events.Attributes": pa.array(
            [[exporter_map(e["attributes"]) for e in row] for row in events], pa.list_(_MAP)
        ),
        "Links.TraceId": pa.array(
            [_ids([x["trace_id"] for x in r]) for r in links], pa.list_(_STR)
        ),
        "Links.SpanId": pa.array([_ids([x["span_id"] for x in r]) for r in links], pa.list_(_STR)),
        "Links.TraceState": pa.array(
            [[x["trace_state"] or "" for x in row] for row in links], pa.list_(_STR)
        ),
        "Links.Attributes": pa.array(
            [[exporter_map(x["attributes"]) for x in row] for row in links], pa.list_(_MAP)
        ),
    }
    return pa.table({name: columns[name] for name in TRACE_COLUMNS})


def _event_names(names: list, attributes: list) -> list[str]:
    # The exporter writes the record's EventName field; our event_name falls back to the
    # event.name attribute, so a name equal to that attribute is taken to come from it.
    return [
        "" if name is None or attrs.get(EVENT_NAME_KEY) == name else name
        for name, attrs in zip(names, attributes, strict=True)
    ]


def to_exporter_logs(table: pa.Table) -> pa.Table:
    """A ``LOG_SCHEMA`` table -> the otel_logs rows the exporter inserts for the same
    records (``LOG_COLUMNS``). Our table keeps no scope attributes: ScopeAttributes is
    empty here (the real exporter fills it)."""
    resources = _json_column(table, "resource_attributes")
    attributes = _json_column(table, "attributes")
    times = table.column("time_unix_nano").to_pylist()
    observed = table.column("observed_time_unix_nano").to_pylist()
    n = table.num_rows
    columns = {
        # the record's time, else its observed time (exporter_logs.go)
        "Timestamp": pa.array(
            [t or o for t, o in zip(times, observed, strict=True)], pa.int64()
        ).cast(_NS_UTC),
        "TraceId": _fill(table, "trace_id"),
        "SpanId": _fill(table, "span_id"),
        "TraceFlags": pa.array([f & 0xFF for f in table.column("flags").to_pylist()], pa.uint8()),
        "SeverityText": _fill(table, "severity_text"),
        "SeverityNumber": pa.array(
            [s & 0xFF for s in table.column("severity_number").to_pylist()], pa.uint8()
        ),
        "ServiceName": _service_names(resources),
        "Body": [as_string(b) for b in _json_column(table, "body")],
        "ResourceSchemaUrl": pa.repeat(pa.scalar("", _STR), n),
        "ResourceAttributes": pa.array([exporter_map(r) for r in resources], _MAP),
        "ScopeSchemaUrl": pa.repeat(pa.scalar("", _STR), n),
        "ScopeName": _fill(table, "scope_name"),
        "ScopeVersion": _fill(table, "scope_version"),
        "ScopeAttributes": pa.array([[] for _ in range(n)], _MAP),
        "LogAttributes": pa.array([exporter_map(a) for a in attributes], _MAP),
        "EventName": _event_names(table.column("event_name").to_pylist(), attributes),
    }
    return pa.table({name: columns[name] for name in LOG_COLUMNS})


def insert_as_exporter(
    engine: Engine,
    spans: pa.Table | None = None,
    logs: pa.Table | None = None,
    enum_style: str = "current",
) -> None:
    """Do what the exporter does with these spans / logs (``SPAN_SCHEMA`` / ``LOG_SCHEMA``
    tables): create its tables in the engine's database when missing, then insert."""
    for statement in exporter_ddl(engine.database):
        engine.command(statement)
    if spans is not None and spans.num_rows:
        engine.insert(TRACES_TABLE, to_exporter_spans(spans, enum_style))
    if logs is not None and logs.num_rows:
        engine.insert(LOGS_TABLE, to_exporter_logs(logs))
