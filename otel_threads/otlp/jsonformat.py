"""OTLP/JSON -> rows (internal to :mod:`otel_threads.otlp.decode`).

Reads the parsed JSON directly (not through ``google.protobuf.json_format``,
which would read the hex ids as base64) and yields the same rows as the protobuf
reader for the same data. The OTLP JSON encoding: ids are hex strings, 64-bit
integers are numbers or strings, enums are integers (their proto names are
accepted too), keys are lowerCamelCase (snake_case field names are accepted),
``null`` means "not set", bytes values are base64.

A request that does not have this shape is a :class:`DecodeError` naming where
(``resourceSpans[0].scopeSpans[1].spans[3]: ...``); only invalid ids (and times
past int64) reject a single span or record.
"""

from __future__ import annotations

from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otel_threads.otlp.json_values import (
    U32,
    U64,
    ShapeError,
    any_value,
    attributes,
    field_enum,
    field_int,
    field_list,
    field_object,
    field_text,
    hex_id,
    hex_problem,
    load_json,
)
from otel_threads.otlp.values import (
    DecodeError,
    Rejections,
    encode_json,
    log_problem,
    log_row,
    resource_names,
    scope_key,
    span_marks,
    span_problem,
)


def _events(events: list) -> str:
    out = []
    for event in events:
        event = field_object(event, "event")
        out.append(
            {
                "time_unix_nano": field_int(event.get("timeUnixNano"), "event timeUnixNano", *U64),
                "name": field_text(event.get("name"), "event name"),
                "attributes": attributes(event.get("attributes"), 0),
                "dropped_attributes_count": field_int(
                    event.get("droppedAttributesCount"), "droppedAttributesCount", *U32
                ),
            }
        )
    return encode_json(out)


def _link_id(value: object) -> str:
    raw = hex_id(value)
    # A link's ids are kept as given (lowercased) even when malformed: links never reject a span.
    return raw.hex() if raw is not None else field_text(value, "link id").lower()


def _links(links: list) -> str:
    out = []
    for link in links:
        link = field_object(link, "link")
        out.append(
            {
                "trace_id": _link_id(link.get("traceId")),
                "span_id": _link_id(link.get("spanId")),
                "trace_state": field_text(link.get("traceState"), "link traceState") or None,
                "attributes": attributes(link.get("attributes"), 0),
                "dropped_attributes_count": field_int(
                    link.get("droppedAttributesCount"), "droppedAttributesCount", *U32
                ),
                "flags": field_int(link.get("flags"), "link flags", *U32),
            }
        )
    return encode_json(out)


def _resource(container: dict) -> tuple[dict, str]:
    resource = attributes(field_object(container.get("resource"), "resource").get("attributes"), 0)
    return resource, encode_json(resource)


def _scope(container: dict) -> tuple[dict, str]:
    scope = field_object(container.get("scope"), "scope")
    return scope, encode_json(attributes(scope.get("attributes"), 0))


def _located(where: list[str], exc: Exception) -> DecodeError:
    path = "".join(where).lstrip(".") or "request"
    return DecodeError(f"request is not valid OTLP/JSON: {path}: {exc}")


# --- requests --------------------------------------------------------------------

_ZERO8 = bytes(8)
_KINDS = trace_pb2.Span.SpanKind
_CODES = trace_pb2.Status.StatusCode
_SEVERITIES = logs_pb2.SeverityNumber


def _span(span: object) -> tuple[str | None, tuple]:
    """(why the span is rejected or None, its row)."""
    span = field_object(span, "span")
    trace_hex, span_hex, parent_hex = (
        span.get("traceId"),
        span.get("spanId"),
        span.get("parentSpanId"),
    )
    trace_id, span_id, parent = hex_id(trace_hex), hex_id(span_hex), hex_id(parent_hex)
    start = field_int(span.get("startTimeUnixNano"), "startTimeUnixNano", *U64)
    end = field_int(span.get("endTimeUnixNano"), "endTimeUnixNano", *U64)
    attrs = attributes(span.get("attributes"), 0)
    events = field_list(span.get("events"), "events")
    links = field_list(span.get("links"), "links")
    status = field_object(span.get("status"), "status")
    fields = (
        field_text(span.get("traceState"), "traceState") or None,
        field_text(span.get("name"), "name"),
        field_enum(span.get("kind"), "kind", _KINDS),
        start,
        end,
        field_enum(status.get("code"), "status code", _CODES),
        field_text(status.get("message"), "status message") or None,
        encode_json(attrs),
        _events(events) if events else "[]",
        _links(links) if links else "[]",
        field_int(span.get("flags"), "flags", *U32),
        field_int(span.get("droppedAttributesCount"), "droppedAttributesCount", *U32),
        field_int(span.get("droppedEventsCount"), "droppedEventsCount", *U32),
        field_int(span.get("droppedLinksCount"), "droppedLinksCount", *U32),
        span_marks(attrs),
    )
    if trace_id is None or span_id is None or parent is None:
        return hex_problem(trace_id=trace_hex, span_id=span_hex, parent_span_id=parent_hex), ()
    problem = span_problem(trace_id, span_id, parent, start, end)
    if problem:
        return problem, ()
    parent_id = parent.hex() if parent and parent != _ZERO8 else None
    return None, (trace_id.hex(), span_id.hex(), parent_id, *fields)


def _log_record(record: object, identity: bytes) -> tuple[str | None, tuple]:
    """(why the record is rejected or None, its row)."""
    record = field_object(record, "log record")
    trace_hex, span_hex = record.get("traceId"), record.get("spanId")
    trace_id, span_id = hex_id(trace_hex), hex_id(span_hex)
    time = field_int(record.get("timeUnixNano"), "timeUnixNano", *U64)
    observed = field_int(record.get("observedTimeUnixNano"), "observedTimeUnixNano", *U64)
    fields = (
        time,
        observed,
        field_enum(record.get("severityNumber"), "severityNumber", _SEVERITIES),
        field_text(record.get("severityText"), "severityText"),
        field_text(record.get("eventName"), "eventName"),
        any_value(record.get("body"), 0),
        attributes(record.get("attributes"), 0),
        field_int(record.get("flags"), "flags", *U32),
        field_int(record.get("droppedAttributesCount"), "droppedAttributesCount", *U32),
    )
    if trace_id is None or span_id is None:
        return hex_problem(trace_id=trace_hex, span_id=span_hex), ()
    problem = log_problem(len(trace_id), len(span_id), time, observed)
    if problem:
        return problem, ()
    trace_text = trace_id.hex() if trace_id.strip(b"\0") else None
    span_text = span_id.hex() if span_id.strip(b"\0") else None
    return None, log_row(identity, trace_text, span_text, *fields)


def trace_rows(data: bytes) -> tuple[list, list, list, Rejections]:
    """(span rows, scope rows, rows per scope, rejections) of an OTLP/JSON trace request."""
    root = load_json(data)
    rows: list[tuple] = []
    scopes: list[tuple] = []
    scope_counts: list[int] = []
    rejections = Rejections("span")
    where = ["", "", ""]
    try:
        for r, resource_spans in enumerate(field_list(root.get("resourceSpans"), "resourceSpans")):
            where[:] = [f"resourceSpans[{r}]", "", ""]
            resource_spans = field_object(resource_spans, "resourceSpans item")
            resource, resource_json = _resource(resource_spans)
            names = resource_names(resource)
            scope_list = field_list(resource_spans.get("scopeSpans"), "scopeSpans")
            for s, scope_spans in enumerate(scope_list):
                where[1:] = [f".scopeSpans[{s}]", ""]
                scope_spans = field_object(scope_spans, "scopeSpans item")
                scope, scope_attributes = _scope(scope_spans)
                scope_name = field_text(scope.get("name"), "scope name")
                version = field_text(scope.get("version"), "scope version")
                first = len(rows)
                for i, span in enumerate(field_list(scope_spans.get("spans"), "spans")):
                    where[2] = f".spans[{i}]"
                    problem, row = _span(span)
                    if problem:
                        rejections.add(f"span {i} of scope {scope_name!r}: {problem}")
                    else:
                        rows.append(row)
                where[2] = ""
                if len(rows) > first:
                    scope_counts.append(len(rows) - first)
                    scope_values = (scope_name or None, version or None, scope_attributes)
                    scopes.append((resource_json, *names, *scope_values))
    except (ShapeError, RecursionError) as exc:
        raise _located(where, exc) from None
    return rows, scopes, scope_counts, rejections


def log_rows(data: bytes) -> tuple[list, list, list, Rejections]:
    """(log rows, scope rows, rows per scope, rejections) of an OTLP/JSON logs request."""
    root = load_json(data)
    rows: list[tuple] = []
    scopes: list[tuple] = []
    scope_counts: list[int] = []
    rejections = Rejections("log record")
    where = ["", "", ""]
    try:
        for r, resource_logs in enumerate(field_list(root.get("resourceLogs"), "resourceLogs")):
            where[:] = [f"resourceLogs[{r}]", "", ""]
            resource_logs = field_object(resource_logs, "resourceLogs item")
            resource, resource_json = _resource(resource_logs)
            service_name, project = resource_names(resource)
            for s, scope_logs in enumerate(field_list(resource_logs.get("scopeLogs"), "scopeLogs")):
                where[1:] = [f".scopeLogs[{s}]", ""]
                scope_logs = field_object(scope_logs, "scopeLogs item")
                scope, scope_attributes = _scope(scope_logs)
                scope_name = field_text(scope.get("name"), "scope name")
                version = field_text(scope.get("version"), "scope version")
                identity = scope_key(resource_json, scope_name, version, scope_attributes)
                first = len(rows)
                records = field_list(scope_logs.get("logRecords"), "logRecords")
                for i, record in enumerate(records):
                    where[2] = f".logRecords[{i}]"
                    problem, row = _log_record(record, identity)
                    if problem:
                        rejections.add(f"log record {i} of scope {scope_name!r}: {problem}")
                    else:
                        rows.append(row)
                where[2] = ""
                if len(rows) > first:
                    scope_counts.append(len(rows) - first)
                    scope_values = (scope_name or None, version or None, service_name, project)
                    scopes.append((resource_json, *scope_values))
    except (ShapeError, RecursionError) as exc:
        raise _located(where, exc) from None
    return rows, scopes, scope_counts, rejections
