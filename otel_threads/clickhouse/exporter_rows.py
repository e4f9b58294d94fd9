"""Our span/log rows <-> the rows the Collector's ``clickhouseexporter`` writes.

``from_exporter_spans`` / ``from_exporter_logs`` are what the derive worker uses: rows
selected from otel_traces / otel_logs (``TRACE_COLUMNS`` / ``LOG_COLUMNS``) become
``SPAN_SCHEMA`` / ``LOG_SCHEMA`` tables our views run on. The exporter keeps every
attribute as ``pcommon.Value.AsString()`` (see ``exporter_values``), so a value's type is
gone; the keys our SQL reads as a number, a bool or an array get theirs back
(``exporter_values.RESTORED_TYPES``), every other value stays a string. What cannot come
back is listed in docs/clickhouse.md, "What the exporter keeps". Exact duplicate rows (a
redelivered batch) are dropped.

``to_exporter_spans`` / ``to_exporter_logs`` / ``insert_as_exporter`` go the other way
(the test-side emulation of the exporter, in ``exporter_emulation``; here too).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from otel_threads.clickhouse.exporter_emulation import (
    insert_as_exporter,
    to_exporter_logs,
    to_exporter_spans,
)
from otel_threads.clickhouse.exporter_schema import LOG_COLUMNS, TRACE_COLUMNS
from otel_threads.clickhouse.exporter_values import (
    ENUM_STYLES,
    restore_attributes,
    restore_json,
)
from otel_threads.otlp.tables import LOG_SCHEMA, SPAN_KINDS, SPAN_SCHEMA, STATUS_CODES
from otel_threads.otlp.values import (
    EVENT_NAME_KEY,
    encode_json,
    nonempty_str,
    record_id,
    resource_names,
    scope_key,
    span_marks,
)

__all__ = [
    "ENUM_STYLES",
    "from_exporter_logs",
    "from_exporter_spans",
    "insert_as_exporter",
    "to_exporter_logs",
    "to_exporter_spans",
]

_KIND_NAMES = {v: k for style in ENUM_STYLES.values() for k, v in style[0].items()}
_CODE_NAMES = {v: c for style in ENUM_STYLES.values() for c, v in style[1].items()}
_KIND_NAMES.update({k: k for k in SPAN_KINDS})
_CODE_NAMES.update({c: c for c in STATUS_CODES})

_STR = pa.string()
_NS = pa.timestamp("ns")
_US = pa.timestamp("us")
_MAP = pa.map_(pa.string(), pa.string())


# --- exporter rows -> ours (the worker's side) -----------------------------------


def _plain(rows: pa.Table, name: str) -> pa.Array:
    """A column as one array, binary read as UTF-8 strings (a dictionary-encoded one,
    LowCardinality, works as it is)."""
    column = rows.column(name).combine_chunks()
    if column.type in (pa.binary(), pa.large_binary(), pa.large_string()):
        column = column.cast(_STR)
    return column


def _nanos(column: pa.Array) -> pa.Array:
    """A DateTime64 column (any unit, with or without a zone) as int64 nanoseconds."""
    return column.cast(pa.timestamp("ns", tz=column.type.tz)).cast(_NS).cast(pa.int64())


def _pairs(column: pa.Array) -> list:
    """A Map column (or an Array of Maps) as Python lists of (key, value) pairs."""
    kind = column.type
    if pa.types.is_map(kind) and kind != _MAP:
        column = column.cast(_MAP)
    elif pa.types.is_list(kind) and kind.value_type != _MAP:
        column = column.cast(pa.list_(_MAP))
    return column.to_pylist()


def _text_lists(column: pa.Array) -> list:
    """An Array(String) column as Python lists of str."""
    if column.type.value_type != _STR:
        column = column.cast(pa.list_(_STR))
    return column.to_pylist()


def _empty_null(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, _STR), column)


def _names(column: pa.Array, lookup: dict, default: str) -> pa.Array:
    return pa.array([lookup.get(v, default) for v in column.to_pylist()], _STR)


def _null_at_zero(nanos: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(nanos, 0), pa.scalar(None, values.type), values)


def _dedupe(table: pa.Table) -> pa.Table:
    """The table without exact duplicate rows (the first of each kept, order kept)."""
    if table.num_rows < 2:
        return table
    keyed = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    firsts = keyed.group_by(table.column_names, use_threads=False).aggregate([("__row", "min")])
    keep = pc.sort_indices(firsts.column("__row_min"))
    rows = pc.take(firsts.column("__row_min"), keep)
    return table if len(rows) == table.num_rows else table.take(rows)


def _restored(pairs_column: pa.Array) -> list[dict]:
    return [restore_attributes(pairs) for pairs in _pairs(pairs_column)]


def _events_json(times: pa.Array, names: list, attrs: list) -> list[str]:
    out = []
    nanos = _nanos_lists(times)
    for row_times, row_names, row_attrs in zip(nanos, names, attrs, strict=True):
        events = [
            {
                "time_unix_nano": t,
                "name": n,
                "attributes": restore_attributes(a),
                "dropped_attributes_count": 0,
            }
            for t, n, a in zip(row_times or (), row_names or (), row_attrs or (), strict=True)
        ]
        out.append(encode_json(events))
    return out


def _links_json(trace_ids: list, span_ids: list, states: list, attrs: list) -> list[str]:
    out = []
    for row in zip(trace_ids, span_ids, states, attrs, strict=True):
        links = [
            {
                "trace_id": t,
                "span_id": s,
                "trace_state": ts or None,
                "attributes": restore_attributes(a),
                "dropped_attributes_count": 0,
                "flags": 0,
            }
            for t, s, ts, a in zip(*(part or () for part in row), strict=True)
        ]
        out.append(encode_json(links))
    return out


def _nanos_lists(column: pa.Array) -> list:
    tz = column.type.value_type.tz
    as_ns = column.cast(pa.list_(pa.timestamp("ns", tz=tz))).cast(pa.list_(_NS))
    return as_ns.cast(pa.list_(pa.int64())).to_pylist()


def from_exporter_spans(rows: pa.Table) -> pa.Table:
    """otel_traces rows (``TRACE_COLUMNS``, either enum spelling) -> a ``SPAN_SCHEMA``
    table, exact duplicates dropped. See the module docstring for what comes back."""
    if rows.num_rows == 0:
        return SPAN_SCHEMA.empty_table()
    col = {name: _plain(rows, name) for name in TRACE_COLUMNS}
    start_ns = _nanos(col["Timestamp"])
    duration = col["Duration"].cast(pa.uint64())
    end_ns = pc.add(start_ns.cast(pa.uint64(), safe=False), duration).cast(pa.int64(), safe=False)
    elapsed = pc.cast(pc.subtract(end_ns, start_ns), pa.float64(), safe=False)
    attributes = _restored(col["SpanAttributes"])
    resources = _restored(col["ResourceAttributes"])
    marks = [span_marks(a) for a in attributes]
    names = [resource_names(r) for r in resources]
    arrays = {
        "trace_id": col["TraceId"],
        "span_id": col["SpanId"],
        "parent_span_id": _empty_null(col["ParentSpanId"]),
        "trace_state": _empty_null(col["TraceState"]),
        "name": col["SpanName"],
        "kind": _names(col["SpanKind"], _KIND_NAMES, SPAN_KINDS[0]),
        "start_time": start_ns.cast(_NS).cast(_US, safe=False),
        "end_time": _null_at_zero(end_ns, end_ns.cast(_NS).cast(_US, safe=False)),
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": end_ns,
        "duration_ms": _null_at_zero(end_ns, pc.divide(elapsed, 1e6)),
        "status_code": _names(col["StatusCode"], _CODE_NAMES, STATUS_CODES[0]),
        "status_message": _empty_null(col["StatusMessage"]),
        "service_name": pa.array([n[0] for n in names], _STR),
        "project": pa.array([n[1] for n in names], _STR),
        "attributes": pa.array([encode_json(a) for a in attributes], _STR),
        "events": _events_json(
            col["Events.Timestamp"],
            _text_lists(col["Events.Name"]),
            _pairs(col["Events.Attributes"]),
        ),
        "links": _links_json(
            _text_lists(col["Links.TraceId"]),
            _text_lists(col["Links.SpanId"]),
            _text_lists(col["Links.TraceState"]),
            _pairs(col["Links.Attributes"]),
        ),
        "resource_attributes": pa.array([encode_json(r) for r in resources], _STR),
        "scope_name": _empty_null(col["ScopeName"]),
        "scope_version": _empty_null(col["ScopeVersion"]),
        "scope_attributes": pa.repeat(pa.scalar("{}", _STR), rows.num_rows),  # not kept
        "flags": pa.repeat(pa.scalar(0, pa.int64()), rows.num_rows),  # not kept
        "thread_id": pa.array([m[0] for m in marks], _STR),
        "turn_id": pa.array([m[1] for m in marks], _STR),
        "is_turn": pa.array([m[2] for m in marks], pa.bool_()),
        "previous_turn_id": pa.array([m[3] for m in marks], _STR),
    }
    for name in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        arrays[name] = pa.repeat(pa.scalar(0, pa.int32()), rows.num_rows)  # not kept
    return _dedupe(pa.Table.from_arrays([arrays[f.name] for f in SPAN_SCHEMA], schema=SPAN_SCHEMA))


def _body_json(text: str) -> str | None:
    """The exporter's Body (AsString of the body) -> our body JSON: '' is no body, a JSON
    object's text is that object (a map body), anything else a string."""
    if not text:
        return None
    if text[0] == "{":
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if type(value) is dict:
            return encode_json(restore_json(value))
    return encode_json(text)


_RECORD_PARTS = (
    "trace_id", "span_id", "time_unix_nano", "observed_time_unix_nano", "severity_number",
    "severity_text", "event_name", "body", "attributes", "flags", "dropped_attributes_count",
)  # fmt: skip
"""The columns a log's record_id hashes, in values.log_row's order."""


def _record_ids(arrays: dict, col: dict) -> pa.Array:
    """values.record_id of each restored row, under its resource/scope identity."""
    scopes = _restored(col["ScopeAttributes"])
    identities = zip(
        arrays["resource_attributes"].to_pylist(),
        col["ScopeName"].to_pylist(),
        col["ScopeVersion"].to_pylist(),
        scopes,
        strict=True,
    )
    parts = zip(*(pa.array(arrays[name]).to_pylist() for name in _RECORD_PARTS), strict=True)
    return pa.array(
        [
            record_id(scope_key(resource, name, version, encode_json(scope)), values)
            for (resource, name, version, scope), values in zip(identities, parts, strict=True)
        ],
        _STR,
    )


def from_exporter_logs(rows: pa.Table) -> pa.Table:
    """otel_logs rows (``LOG_COLUMNS``) -> a ``LOG_SCHEMA`` table, exact duplicates
    dropped; ``record_id`` is a hash of the row's content, so the same record read twice
    gets the same id. See the module docstring for what comes back."""
    if rows.num_rows == 0:
        return LOG_SCHEMA.empty_table()
    col = {name: _plain(rows, name) for name in LOG_COLUMNS}
    nanos = _nanos(col["Timestamp"])
    attributes = _restored(col["LogAttributes"])
    resources = _restored(col["ResourceAttributes"])
    names = [resource_names(r) for r in resources]
    event_names = [
        name or nonempty_str(attrs.get(EVENT_NAME_KEY))
        for name, attrs in zip(col["EventName"].to_pylist(), attributes, strict=True)
    ]
    arrays = {
        "trace_id": _empty_null(col["TraceId"]),
        "span_id": _empty_null(col["SpanId"]),
        "time": _null_at_zero(nanos, nanos.cast(_NS).cast(_US, safe=False)),
        "time_unix_nano": nanos,
        "observed_time_unix_nano": nanos,  # not kept: the exporter keeps one time
        "severity_number": col["SeverityNumber"].cast(pa.int32()),
        "severity_text": _empty_null(col["SeverityText"]),
        "event_name": pa.array(event_names, _STR),
        "body": pa.array([_body_json(b) for b in col["Body"].to_pylist()], _STR),
        "attributes": pa.array([encode_json(a) for a in attributes], _STR),
        "resource_attributes": pa.array([encode_json(r) for r in resources], _STR),
        "scope_name": _empty_null(col["ScopeName"]),
        "scope_version": _empty_null(col["ScopeVersion"]),
        "service_name": pa.array([n[0] for n in names], _STR),
        "project": pa.array([n[1] for n in names], _STR),
        "flags": col["TraceFlags"].cast(pa.int64()),
        "dropped_attributes_count": pa.repeat(pa.scalar(0, pa.int32()), rows.num_rows),
    }
    arrays["record_id"] = _record_ids(arrays, col)
    return _dedupe(pa.Table.from_arrays([arrays[f.name] for f in LOG_SCHEMA], schema=LOG_SCHEMA))
