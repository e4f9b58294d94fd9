"""OTLP protobuf -> columns and rows (internal to :mod:`otel_threads.otlp.decode`).

Requests are parsed with the wire-compatible schema of ``wire``, which
leaves each attribute KeyValue serialized (``attributes`` reads them).

Spans take a columnar fast path, :func:`trace_table`: per ScopeSpans, each field
is read for all spans at once (``map`` over the parsed spans, in C), ids and times
are validated per column, and the attribute lists are converted in one call. A
second, cheap parse with the ``RareTracesRequest`` view proves when no span of a
scope sets trace_state, events, links or a dropped count, so those six fields are
not read span by span. The table is built from the columns (``tables``):
trace and span ids are hex-encoded in one go, no row tuples are made.

The fast path decides nothing on its own: when a span would be rejected, or
anything raises (invalid UTF-8, a malformed KeyValue or event, ...), the request
is read again by :func:`trace_rows`, the per-span reader, which defines the
rejections and the errors. So the output, the rejections and the error messages
are those of the per-span reader, byte for byte.
"""

from __future__ import annotations

from operator import attrgetter

from otel_threads.otlp.attributes import attribute_column
from otel_threads.otlp.attributes import attributes as _attributes
from otel_threads.otlp.tables import SpanColumns, span_table, span_table_columns
from otel_threads.otlp.values import (
    I64_MAX,
    DecodeError,
    Rejections,
    encode_json,
    log_problem,
    log_row,
    resource_names,
    scope_key,
    span_problem,
)
from otel_threads.otlp.wire import (
    DecodeFailure,
    LogsRequest,
    RareTracesRequest,
    Status,
    TracesRequest,
    any_value,
    key_values,
    parse,
)


def _events(events) -> bytes:
    return b"[%b]" % b",".join(
        [
            b'{"time_unix_nano":%d,"name":%b,"attributes":%b,"dropped_attributes_count":%d}'
            % (
                event.time_unix_nano,
                encode_json(event.name).encode(),
                _utf8(_attributes(event.attributes)[0]),
                event.dropped_attributes_count,
            )
            for event in events
        ]
    )


def _utf8(text: bytes | str) -> bytes:
    return text if type(text) is bytes else text.encode()


def _links(links) -> str:
    return encode_json(
        [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": link.trace_state or None,
                "attributes": key_values(link.attributes, 0),
                "dropped_attributes_count": link.dropped_attributes_count,
                "flags": link.flags,
            }
            for link in links
        ]
    )


def _scope_values(resource_json: str, names: tuple, scope) -> tuple:
    scope_attributes = encode_json(key_values(scope.attributes, 0))
    return (resource_json, *names, scope.name or None, scope.version or None, scope_attributes)


_STATUSES = {b"": (0, None), b"\x18\x01": (1, None), b"\x18\x02": (2, None)}
"""Serialized Status -> (code, message) for the usual ones (no message)."""


def _status(raw: bytes) -> tuple[int, str | None]:
    status = Status.FromString(raw)
    return status.code, status.message or None


_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


# --- spans: columnar fast path ----------------------------------------------------


class _Fallback(Exception):
    """A span of the request is rejected: the per-span reader decides."""


_TRACE_ID = attrgetter("trace_id")
_SPAN_ID = attrgetter("span_id")
_PARENT = attrgetter("parent_span_id")
_NAME = attrgetter("name")
_KIND = attrgetter("kind")
_START = attrgetter("start_time_unix_nano")
_END = attrgetter("end_time_unix_nano")
_STATUS = attrgetter("status")
_FLAGS = attrgetter("flags")
_ATTRIBUTES = attrgetter("attributes")
_RARE = attrgetter(
    "trace_state", "events", "links",
    "dropped_attributes_count", "dropped_events_count", "dropped_links_count",
)  # fmt: skip
_LEN16 = {16}
_LEN8 = {8}
_LEN0_8 = {0, 8}


def _rare_fields(data: bytes) -> list[list] | None:
    """Per resource, per scope: the merged rare fields of its spans (None if unparsable)."""
    try:
        request = RareTracesRequest.FromString(data)
        return [[scope.spans for scope in rs.scope_spans] for rs in request.resource_spans]
    except DecodeFailure:
        return None


def _add_scope(columns: SpanColumns, spans: list, rare) -> None:
    """Append the columns of one ScopeSpans' spans; _Fallback if one is rejected."""
    trace_ids = list(map(_TRACE_ID, spans))
    span_ids = list(map(_SPAN_ID, spans))
    parents = list(map(_PARENT, spans))
    starts = list(map(_START, spans))
    ends = list(map(_END, spans))
    if (
        set(map(len, trace_ids)) != _LEN16
        or set(map(len, span_ids)) != _LEN8
        or _ZERO16 in trace_ids
        or _ZERO8 in span_ids
        or not _LEN0_8.issuperset(map(len, parents))
        or max(starts) > I64_MAX
        or max(ends) > I64_MAX
    ):
        raise _Fallback
    if _ZERO8 in parents:  # an all-zero parent is no parent
        parents = [b"" if parent == _ZERO8 else parent for parent in parents]
    statuses = list(map(_STATUSES.get, map(_STATUS, spans)))
    if None in statuses:
        pairs = zip(statuses, spans, strict=True)
        statuses = [found or _status(span.status) for found, span in pairs]
    texts, derived = attribute_column(map(_ATTRIBUTES, spans))
    n = len(spans)
    if rare is not None and not any(map(len, _RARE(rare))):
        trace_states = [None] * n  # no span sets any of them
        events = links = ["[]"] * n
        dropped_attributes = dropped_events = dropped_links = [0] * n
    else:
        trace_states = [span.trace_state or None for span in spans]
        events = [_events(span.events) if span.events else "[]" for span in spans]
        links = [_links(span.links) if span.links else "[]" for span in spans]
        dropped_attributes = [span.dropped_attributes_count for span in spans]
        dropped_events = [span.dropped_events_count for span in spans]
        dropped_links = [span.dropped_links_count for span in spans]
    columns.trace_id += trace_ids
    columns.span_id += span_ids
    columns.parent += parents
    columns.trace_state += trace_states
    columns.name += map(_NAME, spans)
    columns.kind += map(_KIND, spans)
    columns.start += starts
    columns.end += ends
    columns.status += statuses
    columns.attributes += texts
    columns.derived += derived
    columns.events += events
    columns.links += links
    columns.flags += map(_FLAGS, spans)
    columns.dropped_attributes += dropped_attributes
    columns.dropped_events += dropped_events
    columns.dropped_links += dropped_links


def _span_columns(request, data: bytes) -> SpanColumns:
    """The columns of every span; _Fallback or DecodeFailure if the per-span reader
    must decide (a rejected span, anything that does not decode)."""
    columns = SpanColumns()
    rare = _rare_fields(data)
    resources = request.resource_spans
    if rare is not None and len(rare) != len(resources):
        rare = None
    for r, resource_spans in enumerate(resources):
        resource = key_values(resource_spans.resource.attributes, 0)
        resource_json = encode_json(resource)
        names = resource_names(resource)
        scopes = resource_spans.scope_spans
        rare_scopes = rare[r] if rare is not None and len(rare[r]) == len(scopes) else None
        for s, scope_spans in enumerate(scopes):
            spans = list(scope_spans.spans)
            if spans:
                _add_scope(columns, spans, rare_scopes[s] if rare_scopes is not None else None)
                columns.scopes.append(_scope_values(resource_json, names, scope_spans.scope))
                columns.scope_counts.append(len(spans))
    return columns


def trace_table(data: bytes) -> tuple:
    """(SPAN_SCHEMA table, Rejections) of ExportTraceServiceRequest bytes."""
    request = parse(TracesRequest, data)
    try:
        columns = _span_columns(request, data)
    except (_Fallback, *DecodeFailure):
        rows, scopes, scope_counts, rejections = trace_rows(data)
        return span_table(rows, scopes, scope_counts), rejections
    return span_table_columns(columns), Rejections("span")


# --- spans: the per-span reader ----------------------------------------------------


def trace_rows(data: bytes) -> tuple[list, list, list, Rejections]:
    """(span rows, scope rows, rows per scope, rejections) of ExportTraceServiceRequest bytes.

    One span at a time; the reference behaviour of :func:`trace_table`.
    """
    request = parse(TracesRequest, data)
    rows: list[tuple] = []
    scopes: list[tuple] = []
    scope_counts: list[int] = []
    rejections = Rejections("span")
    append = rows.append
    try:
        for resource_spans in request.resource_spans:
            resource = key_values(resource_spans.resource.attributes, 0)
            resource_json = encode_json(resource)
            names = resource_names(resource)
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope
                first = len(rows)
                for i, span in enumerate(scope_spans.spans):
                    trace_id = span.trace_id
                    span_id = span.span_id
                    parent = span.parent_span_id
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    if (
                        len(trace_id) != 16
                        or len(span_id) != 8
                        or trace_id == _ZERO16
                        or span_id == _ZERO8
                        or (parent and len(parent) != 8)
                        or start > I64_MAX
                        or end > I64_MAX
                    ):
                        problem = span_problem(trace_id, span_id, parent, start, end)
                        rejections.add(f"span {i} of scope {scope.name!r}: {problem}")
                        continue
                    attributes, derived = _attributes(span.attributes)
                    events = span.events
                    links = span.links
                    status = _STATUSES.get(span.status) or _status(span.status)
                    append(
                        (
                            trace_id.hex(),
                            span_id.hex(),
                            parent.hex() if parent and parent != _ZERO8 else None,
                            span.trace_state or None,
                            span.name,
                            span.kind,
                            start,
                            end,
                            status[0],
                            status[1],
                            attributes,
                            _events(events) if events else "[]",
                            _links(links) if links else "[]",
                            span.flags,
                            span.dropped_attributes_count,
                            span.dropped_events_count,
                            span.dropped_links_count,
                            derived,
                        )
                    )
                if len(rows) > first:
                    scope_counts.append(len(rows) - first)
                    scopes.append(_scope_values(resource_json, names, scope))
    except DecodeFailure as exc:
        raise DecodeError(f"request is not valid OTLP protobuf: {exc}") from None
    return rows, scopes, scope_counts, rejections


# --- logs --------------------------------------------------------------------------


def log_rows(data: bytes) -> tuple[list, list, list, Rejections]:
    """(log rows, scope rows, rows per scope, rejections) of ExportLogsServiceRequest bytes."""
    request = parse(LogsRequest, data)
    rows: list[tuple] = []
    scopes: list[tuple] = []
    scope_counts: list[int] = []
    rejections = Rejections("log record")
    try:
        for resource_logs in request.resource_logs:
            resource = key_values(resource_logs.resource.attributes, 0)
            resource_json = encode_json(resource)
            service_name, project = resource_names(resource)
            for scope_logs in resource_logs.scope_logs:
                scope = scope_logs.scope
                scope_attributes = encode_json(key_values(scope.attributes, 0))
                identity = scope_key(resource_json, scope.name, scope.version, scope_attributes)
                first = len(rows)
                for i, record in enumerate(scope_logs.log_records):
                    trace_id = record.trace_id
                    span_id = record.span_id
                    problem = log_problem(
                        len(trace_id), len(span_id), record.time_unix_nano,
                        record.observed_time_unix_nano,
                    )  # fmt: skip
                    if problem:
                        rejections.add(f"log record {i} of scope {scope.name!r}: {problem}")
                        continue
                    attrs = key_values(record.attributes, 0)
                    body = any_value(record.body, 0)
                    rows.append(
                        log_row(
                            identity,
                            trace_id.hex() if trace_id.strip(b"\0") else None,
                            span_id.hex() if span_id.strip(b"\0") else None,
                            record.time_unix_nano,
                            record.observed_time_unix_nano,
                            record.severity_number,
                            record.severity_text,
                            record.event_name,
                            body,
                            attrs,
                            record.flags,
                            record.dropped_attributes_count,
                        )
                    )
                if len(rows) > first:
                    scope_counts.append(len(rows) - first)
                    scopes.append(
                        (
                            resource_json,
                            scope.name or None,
                            scope.version or None,
                            service_name,
                            project,
                        )
                    )
    except DecodeFailure as exc:
        raise DecodeError(f"request is not valid OTLP protobuf: {exc}") from None
    return rows, scopes, scope_counts, rejections
