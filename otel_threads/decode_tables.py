"""Rows -> Arrow tables for the OTLP decode step (internal to :mod:`otel_threads.decode`).

Both readers (``decode_protobuf``, ``decode_json``) produce *rows*, one tuple per
span or log record, and *scope rows*, one per ScopeSpans/ScopeLogs that kept a
row; :func:`span_table` and :func:`log_table` turn them into one Arrow table per
request, doing the per-column work (enum names, timestamps, durations,
resource/scope columns) once per column rather than once per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from operator import sub, truediv

import pyarrow as pa
import pyarrow.compute as pc

from otel_threads.decode_values import I32_MAX, DecodeError

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

_STR = pa.string()
_TS = pa.timestamp("us")

SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", _STR),
        ("span_id", _STR),
        ("parent_span_id", _STR),
        ("trace_state", _STR),
        ("name", _STR),
        ("kind", _STR),
        ("start_time", _TS),
        ("end_time", _TS),
        ("start_time_unix_nano", pa.int64()),
        ("end_time_unix_nano", pa.int64()),
        ("duration_ms", pa.float64()),
        ("status_code", _STR),
        ("status_message", _STR),
        ("service_name", _STR),
        ("project", _STR),
        ("attributes", _STR),
        ("events", _STR),
        ("links", _STR),
        ("resource_attributes", _STR),
        ("scope_name", _STR),
        ("scope_version", _STR),
        ("scope_attributes", _STR),
        ("flags", pa.int64()),
        ("dropped_attributes_count", pa.int32()),
        ("dropped_events_count", pa.int32()),
        ("dropped_links_count", pa.int32()),
        ("thread_id", _STR),
        ("turn_id", _STR),
        ("is_turn", pa.bool_()),
        ("previous_turn_id", _STR),
    ]
)
"""Columns of the ``spans`` table, in order (timestamps are naive UTC)."""

LOG_SCHEMA = pa.schema(
    [
        ("trace_id", _STR),
        ("span_id", _STR),
        ("time", _TS),
        ("time_unix_nano", pa.int64()),
        ("observed_time_unix_nano", pa.int64()),
        ("severity_number", pa.int32()),
        ("severity_text", _STR),
        ("event_name", _STR),
        ("body", _STR),
        ("attributes", _STR),
        ("resource_attributes", _STR),
        ("scope_name", _STR),
        ("scope_version", _STR),
        ("service_name", _STR),
        ("project", _STR),
        ("flags", pa.int64()),
        ("dropped_attributes_count", pa.int32()),
        ("record_id", _STR),
    ]
)
"""Columns of the ``logs`` table, in order."""


@dataclass(frozen=True)
class DecodedBatch:
    """The result of decoding one export request.

    ``table`` holds the valid rows (``SPAN_SCHEMA`` or ``LOG_SCHEMA``);
    ``rejected`` items were left out, and ``error`` (None when nothing was
    rejected) names the first few problems, ready for OTLP ``partial_success``.
    """

    table: pa.Table
    accepted: int
    rejected: int
    error: str | None = None


# --- rows -> Arrow ---------------------------------------------------------------
#
# A span row is the tuple
#   (trace_id, span_id, parent_span_id, trace_state, name, kind, start_ns, end_ns,
#    status_code, status_message, attributes, events, links, flags,
#    dropped_attributes, dropped_events, dropped_links, derived)
# where kind/status_code are the raw enum numbers and derived is the tuple from
# ``derive``. A span scope row is
#   (resource_attributes, service_name, project, scope_name, scope_version, scope_attributes)
# and ``scope_counts[k]`` rows, in order, belong to scope row k.
# String cells may be str or UTF-8 bytes: Arrow checks the bytes are valid UTF-8.
# Per-batch pyarrow.compute calls cost ~10-20 us each, so small per-row Python
# loops in C (map, comprehensions) are used where they are cheaper.


def _names(codes: tuple, names: tuple[str, ...]) -> pa.Array:
    """Enum numbers -> names; unknown numbers -> names[0] (UNSPECIFIED / UNSET)."""
    lookup = dict(enumerate(names))
    return pa.array(list(map(lookup.get, codes, repeat(names[0]))), _STR)


def _mostly_same(values: tuple) -> pa.Array:
    """A string column that is often one value throughout ("[]", None): built in one go then."""
    first = values[0]
    if values.count(first) == len(values):
        return pa.repeat(pa.scalar(first, _STR), len(values))
    return pa.array(values, _STR)


def _int32(values: tuple) -> pa.Array:
    """uint32 counts in an int32 column: larger values are clamped."""
    if max(values) > I32_MAX:
        values = tuple(min(v, I32_MAX) for v in values)
    return pa.array(values, pa.int32())


def _timestamps(nanos: pa.Array) -> pa.Array:
    return nanos.cast(pa.timestamp("ns")).cast(_TS, safe=False)


def _null_where_zero(nanos_list: tuple, nanos: pa.Array, values: pa.Array) -> pa.Array:
    if 0 not in nanos_list:
        return values
    return pc.if_else(pc.equal(nanos, 0), pa.scalar(None, values.type), values)


def _scope_columns(scopes: list[tuple], scope_counts: list[int]) -> list[pa.Array]:
    """Resource/scope columns: each scope's values repeated over its rows."""
    columns = []
    for values in zip(*scopes, strict=True):
        chunks = [
            pa.repeat(pa.scalar(value, _STR), count)
            for value, count in zip(values, scope_counts, strict=True)
        ]
        columns.append(chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks))
    return columns


def _build(schema: pa.Schema, build) -> pa.Table:
    try:
        return pa.Table.from_arrays(build(), schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError) as exc:
        text = str(exc)
        if isinstance(exc, UnicodeEncodeError) or "utf8" in text.lower():
            raise DecodeError(
                "request is not valid OTLP: a string value is not valid UTF-8 "
                f"(or contains an unpaired surrogate): {text}"
            ) from None
        raise DecodeError(f"request could not be converted to columns: {text}") from None


def span_table(rows: list[tuple], scopes: list[tuple], scope_counts: list[int]) -> pa.Table:
    """The ``SPAN_SCHEMA`` table of the accepted span rows."""
    if not rows:
        return SPAN_SCHEMA.empty_table()

    def build() -> list[pa.Array]:
        (trace_id, span_id, parent, trace_state, name, kind, start, end, code, message,
         attributes, events, links, flags, dropped_attrs, dropped_events, dropped_links,
         derived) = zip(*rows, strict=True)  # fmt: skip
        thread_id, turn_id, is_turn, previous = zip(*derived, strict=True)
        (resource_attributes, service_name, project, scope_name, scope_version,
         scope_attributes) = _scope_columns(scopes, scope_counts)  # fmt: skip
        start_ns = pa.array(start, pa.int64())
        end_ns = pa.array(end, pa.int64())
        duration = pa.array(list(map(truediv, map(sub, end, start), repeat(1e6))), pa.float64())
        return [
            pa.array(trace_id, _STR),
            pa.array(span_id, _STR),
            pa.array(parent, _STR),
            _mostly_same(trace_state),
            pa.array(name, _STR),
            _names(kind, SPAN_KINDS),
            _timestamps(start_ns),
            _null_where_zero(end, end_ns, _timestamps(end_ns)),
            start_ns,
            end_ns,
            _null_where_zero(end, end_ns, duration),
            _names(code, STATUS_CODES),
            _mostly_same(message),
            service_name,
            project,
            pa.array(attributes, _STR),
            _mostly_same(events),
            _mostly_same(links),
            resource_attributes,
            scope_name,
            scope_version,
            scope_attributes,
            pa.array(flags, pa.int64()),
            _int32(dropped_attrs),
            _int32(dropped_events),
            _int32(dropped_links),
            pa.array(thread_id, _STR),
            pa.array(turn_id, _STR),
            pa.array(is_turn, pa.bool_()),
            _mostly_same(previous),
        ]

    return _build(SPAN_SCHEMA, build)


# A log row is the tuple
#   (trace_id, span_id, time_ns, observed_ns, severity_number, severity_text,
#    event_name, body, attributes, flags, dropped_attributes, record_id)
# and a log scope row is
#   (resource_attributes, scope_name, scope_version, service_name, project).


def log_table(rows: list[tuple], scopes: list[tuple], scope_counts: list[int]) -> pa.Table:
    """The ``LOG_SCHEMA`` table of the accepted log rows."""
    if not rows:
        return LOG_SCHEMA.empty_table()

    def build() -> list[pa.Array]:
        (trace_id, span_id, time, observed, severity, severity_text, event_name, body,
         attributes, flags, dropped, record_id) = zip(*rows, strict=True)  # fmt: skip
        resource_attributes, scope_name, scope_version, service_name, project = _scope_columns(
            scopes, scope_counts
        )
        effective = tuple(t or o for t, o in zip(time, observed, strict=True))
        effective_ns = pa.array(effective, pa.int64())
        return [
            pa.array(trace_id, _STR),
            pa.array(span_id, _STR),
            _null_where_zero(effective, effective_ns, _timestamps(effective_ns)),
            pa.array(time, pa.int64()),
            pa.array(observed, pa.int64()),
            pa.array(severity, pa.int32()),
            pa.array(severity_text, _STR),
            pa.array(event_name, _STR),
            pa.array(body, _STR),
            pa.array(attributes, _STR),
            resource_attributes,
            scope_name,
            scope_version,
            service_name,
            project,
            pa.array(flags, pa.int64()),
            _int32(dropped),
            pa.array(record_id, _STR),
        ]

    return _build(LOG_SCHEMA, build)
