"""The protobuf side of the OTLP decode step: a wire-compatible schema (internal).

Walking attributes through the generated OTLP message classes costs a Python
wrapper object per KeyValue and per AnyValue, which is most of the decode time.
So requests are parsed (by upb, in C) with this private schema: the same field
numbers and wire types as opentelemetry-proto, except that every attribute list,
array and kvlist is ``repeated bytes``, and a log body and a span status are
``bytes``: upb hands back each KeyValue still serialized, in one call. ``protobuf`` reads the
common ones straight from those bytes; :func:`any_value` and :func:`key_values`
here are the generic, exact path, parsing one nesting level at a time, so that
nesting depth is ours to cap (``MAX_DEPTH``), not upb's.

upb checks UTF-8 in the string fields this schema declares; ``protobuf``
leaves the string bytes it copies to Arrow's check when the table is built.

``RareTracesRequest`` is a second view of the same bytes in which every span of a
ScopeSpans merges into one message (a singular message field that occurs again is
merged, and its repeated fields collect every occurrence): empty lists there
prove that no span of the scope sets trace_state, events, links or a dropped
count, so the reader need not ask each span.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from otel_threads.otlp.values import (
    MAX_DEPTH,
    DecodeError,
    escape_key,
    json_bytes,
    json_double,
    truncated,
)

# --- the wire-compatible schema --------------------------------------------------
# Field numbers and wire types are those of opentelemetry-proto (common/v1,
# resource/v1, trace/v1, logs/v1, collector/*/v1). "*T" is repeated, "|T" is a
# member of the oneof "value", a capitalised type is a message of this schema.

_SCHEMA: dict[str, tuple[tuple[str, int, str], ...]] = {
    "KeyValue": (("key", 1, "string"), ("value", 2, "bytes")),
    "AnyValue": (
        ("string_value", 1, "|string"),
        ("bool_value", 2, "|bool"),
        ("int_value", 3, "|int64"),
        ("double_value", 4, "|double"),
        ("array_value", 5, "|RawList"),
        ("kvlist_value", 6, "|RawList"),
        ("bytes_value", 7, "|bytes"),
    ),
    # ArrayValue and KeyValueList: `repeated AnyValue|KeyValue values = 1`.
    "RawList": (("values", 1, "*bytes"),),
    "Resource": (("attributes", 1, "*bytes"), ("dropped_attributes_count", 2, "uint32")),
    "Scope": (
        ("name", 1, "string"),
        ("version", 2, "string"),
        ("attributes", 3, "*bytes"),
        ("dropped_attributes_count", 4, "uint32"),
    ),
    "Status": (("message", 2, "string"), ("code", 3, "int32")),
    "Event": (
        ("time_unix_nano", 1, "fixed64"),
        ("name", 2, "string"),
        ("attributes", 3, "*bytes"),
        ("dropped_attributes_count", 4, "uint32"),
    ),
    "Link": (
        ("trace_id", 1, "bytes"),
        ("span_id", 2, "bytes"),
        ("trace_state", 3, "string"),
        ("attributes", 4, "*bytes"),
        ("dropped_attributes_count", 5, "uint32"),
        ("flags", 6, "fixed32"),
    ),
    "Span": (
        ("trace_id", 1, "bytes"),
        ("span_id", 2, "bytes"),
        ("trace_state", 3, "string"),
        ("parent_span_id", 4, "bytes"),
        ("name", 5, "string"),
        ("kind", 6, "int32"),
        ("start_time_unix_nano", 7, "fixed64"),
        ("end_time_unix_nano", 8, "fixed64"),
        ("attributes", 9, "*bytes"),
        ("dropped_attributes_count", 10, "uint32"),
        ("events", 11, "*Event"),
        ("dropped_events_count", 12, "uint32"),
        ("links", 13, "*Link"),
        ("dropped_links_count", 14, "uint32"),
        ("status", 15, "bytes"),  # a serialized Status: most are one of a few byte strings
        ("flags", 16, "fixed32"),
    ),
    "ScopeSpans": (("scope", 1, "Scope"), ("spans", 2, "*Span"), ("schema_url", 3, "string")),
    "ResourceSpans": (
        ("resource", 1, "Resource"),
        ("scope_spans", 2, "*ScopeSpans"),
        ("schema_url", 3, "string"),
    ),
    "TracesRequest": (("resource_spans", 1, "*ResourceSpans"),),
    "LogRecord": (
        ("time_unix_nano", 1, "fixed64"),
        ("severity_number", 2, "int32"),
        ("severity_text", 3, "string"),
        ("body", 5, "bytes"),
        ("attributes", 6, "*bytes"),
        ("dropped_attributes_count", 7, "uint32"),
        ("flags", 8, "fixed32"),
        ("trace_id", 9, "bytes"),
        ("span_id", 10, "bytes"),
        ("observed_time_unix_nano", 11, "fixed64"),
        ("event_name", 12, "string"),
    ),
    "ScopeLogs": (
        ("scope", 1, "Scope"),
        ("log_records", 2, "*LogRecord"),
        ("schema_url", 3, "string"),
    ),
    "ResourceLogs": (
        ("resource", 1, "Resource"),
        ("scope_logs", 2, "*ScopeLogs"),
        ("schema_url", 3, "string"),
    ),
    "LogsRequest": (("resource_logs", 1, "*ResourceLogs"),),
    # The rarely set span fields, with every span of a ScopeSpans merged into one
    # message (``spans`` is singular: a parser merges repeated occurrences), so
    # that empty lists prove that no span of the scope sets any of them.
    "RareSpanFields": (
        ("trace_state", 3, "*bytes"),
        ("dropped_attributes_count", 10, "*uint32"),
        ("events", 11, "*bytes"),
        ("dropped_events_count", 12, "*uint32"),
        ("links", 13, "*bytes"),
        ("dropped_links_count", 14, "*uint32"),
    ),
    "RareScopeSpans": (("spans", 2, "RareSpanFields"),),
    "RareResourceSpans": (("scope_spans", 2, "*RareScopeSpans"),),
    "RareTracesRequest": (("resource_spans", 1, "*RareResourceSpans"),),
}


def _message_classes() -> dict[str, type[message.Message]]:
    fdp = descriptor_pb2.FieldDescriptorProto
    package = "otel_threads.wire"
    file = descriptor_pb2.FileDescriptorProto(
        name="otel_threads/wire.proto", package=package, syntax="proto3"
    )
    for name, fields in _SCHEMA.items():
        msg = file.message_type.add(name=name)
        for field_name, number, spec in fields:
            field = msg.field.add(name=field_name, number=number, json_name=field_name)
            field.label = fdp.LABEL_REPEATED if spec[0] == "*" else fdp.LABEL_OPTIONAL
            if spec[0] == "|":
                if not msg.oneof_decl:
                    msg.oneof_decl.add(name="value")
                field.oneof_index = 0
            type_name = spec.lstrip("*|")
            if type_name[0].isupper():
                field.type = fdp.TYPE_MESSAGE
                field.type_name = f".{package}.{type_name}"
            else:
                field.type = getattr(fdp, "TYPE_" + type_name.upper())
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in _SCHEMA
    }


_CLASSES = _message_classes()
_KeyValue = _CLASSES["KeyValue"]
_AnyValue = _CLASSES["AnyValue"]
TracesRequest = _CLASSES["TracesRequest"]
LogsRequest = _CLASSES["LogsRequest"]
RareTracesRequest = _CLASSES["RareTracesRequest"]
Status = _CLASSES["Status"]
DecodeFailure = (message.DecodeError, RuntimeError, UnicodeDecodeError)
"""What reading a malformed request can raise; the readers turn it into DecodeError."""


def parse(cls: type[message.Message], data: bytes) -> message.Message:
    try:
        return cls.FromString(data)
    except DecodeFailure as exc:
        raise DecodeError(f"request is not valid OTLP protobuf: {exc}") from None


# --- generic (exact) path --------------------------------------------------------


def any_value(raw: bytes, level: int) -> object:
    """A serialized AnyValue as a JSON-ready value (see ``values``)."""
    if not raw:
        return None
    if level > MAX_DEPTH:
        return truncated()
    value = _AnyValue.FromString(raw)
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return json_double(value.double_value)
    if kind == "array_value":
        return [any_value(item, level + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return key_values(value.kvlist_value.values, level + 1)
    if kind == "bytes_value":
        return json_bytes(value.bytes_value)
    return None


def key_values(raw_kvs, level: int) -> dict:
    """Serialized KeyValues as a dict (escaped keys; a repeated key keeps its last value)."""
    out = {}
    for raw in raw_kvs:
        kv = _KeyValue.FromString(raw)
        out[escape_key(kv.key)] = any_value(kv.value, level)
    return out
