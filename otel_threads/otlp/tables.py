"""Rows or columns -> Arrow tables for the OTLP decode step (internal to ``decode``).

The readers produce *rows*, one tuple per span or log record, and *scope rows*,
one per ScopeSpans/ScopeLogs that kept a row; :func:`span_table` and
:func:`log_table` turn them into one Arrow table per request, doing the per-column
work (enum names, timestamps, durations, resource/scope columns) once per column
rather than once per row. The protobuf span reader's fast path fills
:class:`SpanColumns` instead (no row tuples; raw ids, hex-encoded in one go) and
:func:`span_table_columns` builds the same arrays from them.
"""

from __future__ import annotations

import struct
from array import array
from binascii import hexlify
from dataclasses import dataclass
from itertools import repeat

import pyarrow as pa
import pyarrow.compute as pc

from otel_threads.otlp.values import I32_MAX, DecodeError

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")

_STR = pa.string()
_TS = pa.timestamp("us")
_TS_NS = pa.timestamp("ns")
_ZERO32 = pa.scalar(0, pa.int32())
_MILLION = pa.scalar(1e6, pa.float64())

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

    @classmethod
    def join(cls, batches: list[DecodedBatch]) -> DecodedBatch:
        """The pieces of one request (otel_threads.otlp.split) as one batch."""
        if len(batches) == 1:
            return batches[0]
        errors: list[str] = []
        for batch in batches:
            if batch.error and batch.error not in errors:
                errors.append(batch.error)
        return cls(
            pa.concat_tables([b.table for b in batches], promote_options="default"),
            sum(b.accepted for b in batches),
            sum(b.rejected for b in batches),
            "; ".join(errors) or None,
        )

    def to_bytes(self) -> bytes:
        """The batch as bytes (counts, error, the table as Arrow IPC): what a decode
        worker sends back through its pipe; `from_bytes` reads it."""
        error = (self.error or "").encode()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.table.schema) as out:
            out.write_table(self.table)
        return (
            _BATCH_HEADER.pack(self.accepted, self.rejected, len(error))
            + error
            + sink.getvalue().to_pybytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> DecodedBatch:
        """A batch from `to_bytes`."""
        view = memoryview(data)
        accepted, rejected, length = _BATCH_HEADER.unpack_from(view)
        start = _BATCH_HEADER.size
        error = bytes(view[start : start + length]).decode() or None
        return cls(pa.ipc.open_stream(view[start + length :]).read_all(), accepted, rejected, error)


_BATCH_HEADER = struct.Struct("<III")  # accepted, rejected, error length


# --- rows -> Arrow ---------------------------------------------------------------
#
# A span row is the tuple
#   (trace_id, span_id, parent_span_id, trace_state, name, kind, start_ns, end_ns,
#    status_code, status_message, attributes, events, links, flags,
#    dropped_attributes, dropped_events, dropped_links, derived)
# where kind/status_code are the raw enum numbers and derived is the tuple (the span's
# thread marks) from ``span_marks``. A span scope row is
#   (resource_attributes, service_name, project, scope_name, scope_version, scope_attributes)
# and ``scope_counts[k]`` rows, in order, belong to scope row k.
# String cells may be str or UTF-8 bytes: Arrow checks the bytes are valid UTF-8.
# Per-batch pyarrow.compute calls cost ~3-50 us each (and more when a Python
# scalar must be converted), so small per-row Python loops in C (map,
# comprehensions) are used where they are cheaper; each choice here was measured.
# Columns that can fail (bytes cells: attributes, events) are built in the same
# order as ever, so a bad request gets the same error.


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
    if not any(values):  # the usual all zeros
        return pa.repeat(_ZERO32, len(values))
    if max(values) > I32_MAX:
        values = tuple(min(v, I32_MAX) for v in values)
    return pa.array(values, pa.int32())


def _timestamps(nanos: pa.Array) -> pa.Array:
    """int64 nanoseconds (no nulls) -> timestamp('us'): viewed as timestamp('ns'), then cast."""
    as_ns = pa.Array.from_buffers(_TS_NS, len(nanos), nanos.buffers(), offset=nanos.offset)
    return as_ns.cast(_TS, safe=False)


def _duration_ms(start_ns: pa.Array, end_ns: pa.Array) -> pa.Array:
    """(end - start) / 1e6 as float64, as Python computes it: an exact int64 difference
    (both are in 0..2**63-1), rounded to the nearest double, divided by 1e6."""
    difference = pc.cast(pc.subtract(end_ns, start_ns), pa.float64(), safe=False)
    return pc.divide(difference, _MILLION)


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


def _hex_ids(ids: list[bytes], width: int) -> pa.Array:
    """Ids of ``width`` bytes each -> lowercase hex strings, hex-encoded in one go."""
    data = hexlify(b"".join(ids))
    offsets = array("i", range(0, 2 * width * len(ids) + 1, 2 * width))
    return pa.Array.from_buffers(_STR, len(ids), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _hex_parents(parents: list[bytes]) -> pa.Array:
    """Parent ids (8 bytes, or b"" for NULL) -> hex strings or NULL."""
    if b"" not in parents:
        return _hex_ids(parents, 8)
    return pa.array([parent.hex() if parent else None for parent in parents], _STR)


def _string_column(values) -> pa.Array:
    return values if isinstance(values, pa.Array) else pa.array(values, _STR)


def _span_arrays(columns: tuple, scopes: list[tuple], scope_counts: list[int]) -> list[pa.Array]:
    """The SPAN_SCHEMA arrays of the span columns (row tuple order, ``derived`` split
    in four; ids may be arrays already)."""
    (trace_id, span_id, parent, trace_state, name, kind, start, end, code, message,
     attributes, events, links, flags, dropped_attrs, dropped_events, dropped_links,
     thread_id, turn_id, is_turn, previous) = columns  # fmt: skip
    (resource_attributes, service_name, project, scope_name, scope_version,
     scope_attributes) = _scope_columns(scopes, scope_counts)  # fmt: skip
    start_ns = pa.array(start, pa.int64())
    end_ns = pa.array(end, pa.int64())
    duration = _duration_ms(start_ns, end_ns)
    return [
        _string_column(trace_id),
        _string_column(span_id),
        _string_column(parent),
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


def span_table(rows: list[tuple], scopes: list[tuple], scope_counts: list[int]) -> pa.Table:
    """The ``SPAN_SCHEMA`` table of the accepted span rows."""
    if not rows:
        return SPAN_SCHEMA.empty_table()

    def build() -> list[pa.Array]:
        *columns, derived = zip(*rows, strict=True)
        return _span_arrays((*columns, *zip(*derived, strict=True)), scopes, scope_counts)

    return _build(SPAN_SCHEMA, build)


class SpanColumns:
    """Accepted spans as columns, filled scope by scope (the protobuf fast path).

    Like the row tuple, except: ids are the raw bytes (``parent`` b"" for NULL),
    ``status`` holds (code, message) pairs, ``derived`` the derived tuples; and
    ``scopes``/``scope_counts`` are the scope rows and their span counts.
    """

    FIELDS = (
        "trace_id", "span_id", "parent", "trace_state", "name", "kind", "start", "end",
        "status", "attributes", "events", "links", "flags", "dropped_attributes",
        "dropped_events", "dropped_links", "derived", "scopes", "scope_counts",
    )  # fmt: skip
    __slots__ = FIELDS

    def __init__(self) -> None:
        for field in self.FIELDS:
            setattr(self, field, [])


def span_table_columns(columns: SpanColumns) -> pa.Table:
    """The ``SPAN_SCHEMA`` table of :class:`SpanColumns` (same arrays as :func:`span_table`)."""
    if not columns.trace_id:
        return SPAN_SCHEMA.empty_table()

    def build() -> list[pa.Array]:
        code, message = zip(*columns.status, strict=True)
        c = columns
        return _span_arrays(
            (_hex_ids(c.trace_id, 16), _hex_ids(c.span_id, 8), _hex_parents(c.parent),
             c.trace_state, c.name, c.kind, c.start, c.end, code, message, c.attributes,
             c.events, c.links, c.flags, c.dropped_attributes, c.dropped_events,
             c.dropped_links, *zip(*c.derived, strict=True)),
            c.scopes,
            c.scope_counts,
        )  # fmt: skip

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
