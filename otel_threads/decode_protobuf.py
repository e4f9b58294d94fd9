"""OTLP protobuf -> rows, fast (internal to :mod:`otel_threads.decode`).

Requests are parsed with the wire-compatible schema of ``decode_wire``, which
leaves each attribute KeyValue serialized. :func:`_attributes` turns the common
ones (short keys; string, bool, small int or finite double values) into JSON text
straight from those bytes, checking every length so that it accepts only what a
protobuf parser would read the same way; anything else goes through the generic
path (``decode_wire.key_values``), which gives the same text. Invalid UTF-8 in
the copied bytes is caught by Arrow when the table is built: a DecodeError for the
whole request, as with any protobuf parser.
"""

from __future__ import annotations

import functools
import struct
from json.encoder import encode_basestring

from otel_threads.decode_values import (
    DERIVED_KEYS,
    I64_MAX,
    IS_TURN_KEYS,
    NO_DERIVED,
    PREVIOUS_TURN_ID_KEY,
    THREAD_ID_KEYS,
    TURN_ID_KEY,
    DecodeError,
    Rejections,
    derive,
    encode_json,
    log_problem,
    log_row,
    resource_names,
    scope_key,
    span_problem,
)
from otel_threads.decode_wire import (
    DecodeFailure,
    LogsRequest,
    Status,
    TracesRequest,
    any_value,
    key_values,
    parse,
)

# --- fast path -------------------------------------------------------------------

_JSON_SPECIAL = bytes(range(32)) + b'"\\'
"""Bytes that need escaping in JSON, plus the quote: none may come from user text."""
_TRUE = b"\x01true\x01"
_FALSE = b"\x01false\x01"
_THREAD_ID_KEYS = tuple(key.encode() for key in THREAD_ID_KEYS)
_IS_TURN_KEYS = tuple(key.encode() for key in IS_TURN_KEYS)
_TURN_ID_KEY = TURN_ID_KEY.encode()
_PREVIOUS_TURN_ID_KEY = PREVIOUS_TURN_ID_KEY.encode()
_DERIVED_SET = frozenset(key.encode() for key in DERIVED_KEYS)
_unpack_double = struct.Struct("<d").unpack_from

_STRING_HEADERS: list[bytes | None] = [None] * 256
"""``_STRING_HEADERS[n]``: when the n bytes after a KeyValue's key are a string value
with one-byte lengths, they start with this header ``12 VL 0a SL`` (VL = n - 2,
SL = n - 4) and the string is the rest."""
for _n in range(4, 130):
    _STRING_HEADERS[_n] = bytes((0x12, _n - 2, 0x0A, _n - 4))

_SMALL_VALUES = {bytes((0x12, 2, 0x18, _n)): b"\x01%d\x01" % _n for _n in range(128)}
"""The whole encoding after the key (``12 02 18 n`` / ``12 02 10 b``) of a small int or
a bool -> its marked JSON."""
_SMALL_VALUES.update({bytes((0x12, 2, 0x10, _n)): _TRUE if _n else _FALSE for _n in range(128)})


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 127:
        out.append(n & 127 | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


@functools.lru_cache(maxsize=4096)
def _long_string_header(n: int) -> bytes | None:
    """The header ``12 VL 0a SL`` of a KeyValue holding a string, when the n bytes
    after the key are exactly that (lengths of one to three bytes), else None."""
    for value_length_size in (1, 2, 3):
        value_length = n - 1 - value_length_size
        for string_length_size in (1, 2, 3):
            string_length = value_length - 1 - string_length_size
            if (
                string_length >= 0
                and len(_varint(value_length)) == value_length_size
                and len(_varint(string_length)) == string_length_size
            ):
                return b"\x12" + _varint(value_length) + b"\x0a" + _varint(string_length)
    return None


def _derive_fast(values: dict[bytes, bytes], marked: list[bytes]) -> tuple:
    """``derive`` for the fast path's values (string bytes, unless the key is marked)."""
    thread_id = None
    for key in _THREAD_ID_KEYS:
        raw = values.get(key)
        if raw and key not in marked:
            thread_id = raw.decode()
            break
    is_turn = None
    for key in _IS_TURN_KEYS:
        raw = values.get(key)
        if raw is not None and key in marked and raw in (_TRUE, _FALSE):
            is_turn = raw == _TRUE
            break
    turn_id = values.get(_TURN_ID_KEY)
    previous = values.get(_PREVIOUS_TURN_ID_KEY)
    return (
        thread_id,
        turn_id.decode() if turn_id and _TURN_ID_KEY not in marked else None,
        is_turn,
        previous.decode() if previous and _PREVIOUS_TURN_ID_KEY not in marked else None,
    )


def _attributes(raw_kvs) -> tuple[bytes | str, tuple]:
    """JSON object text of a span's attributes, and the derived thread/turn columns.

    The loop reads KeyValues laid out as ``0a KL key 12 VL <AnyValue>`` with
    one- or two-byte lengths and an AnyValue of a single string, bool, 1-2 byte
    int or finite double field, checking every length so that it accepts only
    what a protobuf parser reads the same way. Anything else (and a repeated key)
    takes the generic path, which gives the same text.
    """
    if not raw_kvs:
        return b"{}", NO_DERIVED
    values: dict[bytes, bytes] = {}  # key -> string bytes, or marked JSON of another value
    marked: list[bytes] = []
    headers = _STRING_HEADERS
    small = _SMALL_VALUES
    try:
        for kv in raw_kvs:
            key_length = kv[1]
            p = key_length + 2
            if kv[0] != 0x0A or key_length > 127:
                break
            n = len(kv) - p  # bytes after the key: 12 VL <AnyValue>
            if n < 130:
                if kv[p : p + 4] == headers[n]:  # string_value
                    values[kv[2:p]] = kv[p + 4 :]
                    continue
                value = small.get(kv[p:])  # int_value < 128 or bool_value
                if value is None:
                    if n == 5 and kv[p : p + 3] == b"\x12\x03\x18" and kv[p + 3] > 127 > kv[p + 4]:
                        value = b"\x01%d\x01" % ((kv[p + 3] & 127) | (kv[p + 4] << 7))
                    elif n == 11 and kv[p : p + 3] == b"\x12\x09\x21":  # double_value
                        x = _unpack_double(kv, p + 3)[0]
                        if x - x != 0:  # inf or nan: tagged by the generic path
                            break
                        value = b"\x01%b\x01" % repr(x).encode()
                    else:
                        break
                key = kv[2:p]
                values[key] = value
                marked.append(key)
            else:  # a longer string: two-byte lengths
                header = _long_string_header(n)
                if header is None or not kv.startswith(header, p):
                    break
                values[kv[2:p]] = kv[p + len(header) :]
        else:
            if len(values) == len(raw_kvs):
                # {"k1":"v1","k2":"\x01123\x01"}: 4 quotes per entry, 2 marks per marked one.
                # Strings are used as they are when the whole text holds no byte that JSON
                # escapes, no quote but ours and no key starting with "$"; else each key
                # and string is checked and escaped alone.
                text = b'{"' + b'","'.join(map(b'":"'.join, values.items())) + b'"}'
                special = len(text) - len(text.translate(None, _JSON_SPECIAL))
                if special != 4 * len(values) + 2 * len(marked) or (b"$" in text and b'"$' in text):
                    text = _escaped_object_text(values, frozenset(marked))
                if marked:  # drop the quotes around each marked value (split is memchr-fast)
                    pieces = text.split(b"\x01")
                    pieces[0] = pieces[0][:-1]
                    for i in range(2, len(pieces) - 1, 2):
                        pieces[i] = pieces[i][1:-1]
                    pieces[-1] = pieces[-1][1:]
                    text = b"".join(pieces)
                if _DERIVED_SET.isdisjoint(values):
                    return text, NO_DERIVED
                return text, _derive_fast(values, marked)
    except IndexError:
        pass
    attrs = key_values(raw_kvs, 0)
    return encode_json(attrs), derive(attrs)


def _escape(raw: bytes) -> bytes:
    """JSON string content of UTF-8 bytes, escaped exactly as ``json`` does."""
    return encode_basestring(raw.decode())[1:-1].encode()


def _escaped_object_text(values: dict[bytes, bytes], marked: frozenset[bytes]) -> bytes:
    """The fast path's JSON object, checking and escaping each key and string alone."""
    items = []
    special = _JSON_SPECIAL
    for key, value in values.items():
        text_key = key if len(key) == len(key.translate(None, special)) else _escape(key)
        if text_key[:1] == b"$":
            text_key = b"$" + text_key
        if key not in marked and len(value) != len(value.translate(None, special)):
            value = _escape(value)
        items.append(text_key + b'":"' + value)
    return b'{"' + b'","'.join(items) + b'"}'


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


def trace_rows(data: bytes) -> tuple[list, list, list, Rejections]:
    """(span rows, scope rows, rows per scope, rejections) of ExportTraceServiceRequest bytes."""
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
