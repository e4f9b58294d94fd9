"""Span attribute lists -> JSON text (internal to :mod:`otel_threads.otlp.decode`).

The attribute path of the protobuf reader: :func:`attribute_column` turns the
common KeyValues (short keys; string, bool, small int or finite double values)
into JSON text straight from their serialized bytes, checking every length so
that it accepts only what a protobuf parser would read the same way; anything
else goes through the generic path (``wire.key_values``), which gives the
same text. Invalid UTF-8 in the copied bytes is caught by Arrow when the table is
built: a DecodeError for the whole request, as with any protobuf parser.

It takes all the spans of a ScopeSpans in one call (the per-span work is inline:
a function call per span costs about as much as two attributes); :func:`attributes`
is the same for one span (events, and the per-span reader ``trace_rows``). Each
span goes through the same steps in the same order as before, so a bad request
gets the same error.

Accelerator: when the C extension ``otel_threads.otlp._speedups`` is importable (built by
``pip install``; optional, skipped when there is no compiler), :func:`attribute_column`
and :func:`attributes` run its loop instead, which gives the same text (as bytes) and
the same derived values, and hands every list it does not handle exactly (malformed or
unusual encodings, repeated keys, invalid UTF-8, ...) back to the Python path below.
Set ``OTEL_THREADS_SPEEDUPS=0`` in the environment before import to use the Python
path only; :data:`ACCELERATED` says which path is in use.
"""

from __future__ import annotations

import functools
import struct
from json.encoder import encode_basestring

from otel_threads import env
from otel_threads.otlp.values import (
    IS_TURN_KEYS,
    MARK_KEYS,
    NO_MARKS,
    PREVIOUS_TURN_ID_KEY,
    THREAD_ID_KEYS,
    TURN_ID_KEY,
    encode_json,
    span_marks,
    thread_id_value,
)
from otel_threads.otlp.wire import key_values

if not env.enabled(env.SPEEDUPS):
    _speedups = None
else:
    try:
        from otel_threads.otlp import _speedups
    except ImportError:  # not built (no compiler at install time): the Python path
        _speedups = None

ACCELERATED = _speedups is not None
"""Whether the C accelerator ``otel_threads.otlp._speedups`` is in use."""

# --- fast path -------------------------------------------------------------------

_JSON_SPECIAL = bytes(range(32)) + b'"\\'
"""Bytes that need escaping in JSON, plus the quote: none may come from user text."""
_TRUE = b"\x01true\x01"
_FALSE = b"\x01false\x01"
_THREAD_ID_KEYS = tuple(key.encode() for key in THREAD_ID_KEYS)
_IS_TURN_KEYS = tuple(key.encode() for key in IS_TURN_KEYS)
_TURN_ID_KEY = TURN_ID_KEY.encode()
_PREVIOUS_TURN_ID_KEY = PREVIOUS_TURN_ID_KEY.encode()
_MARK_SET = frozenset(key.encode() for key in MARK_KEYS)
_unpack_double = struct.Struct("<d").unpack_from
_INT2 = b"\x12\x03\x18"
"""``12 03 18``: an AnyValue of 3 bytes holding an int_value (two-byte varint follows)."""

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


def _span_marks_fast(values: dict[bytes, bytes], marked: list[bytes]) -> tuple:
    """``span_marks`` for the fast path's values (string bytes, unless the key is marked)."""
    thread_id = None
    for key in _THREAD_ID_KEYS:
        raw = values.get(key)
        if raw and key not in marked:
            thread_id = thread_id_value(raw.decode())
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


def attributes(raw_kvs) -> tuple[bytes | str, tuple]:
    """JSON object text of one span's attributes, and its derived thread/turn columns."""
    if _speedups is not None:
        result = _speedups.attributes(raw_kvs)
        if result is not None:
            return result
    return _python_attributes(raw_kvs)


def attribute_column(attribute_lists) -> tuple[list, list]:
    """:func:`python_attribute_column`, by the C accelerator when it is in use."""
    if _speedups is not None:
        return _speedups.attribute_column(attribute_lists, _python_attributes)
    return python_attribute_column(attribute_lists)


def _python_attributes(raw_kvs) -> tuple[bytes | str, tuple]:
    texts, derived = python_attribute_column((raw_kvs,))
    return texts[0], derived[0]


def python_attribute_column(attribute_lists) -> tuple[list, list]:
    """JSON object text (bytes, or str from the generic path) and derived thread/turn
    columns of each span's attributes (``span.attributes`` of each span, in order).

    The loop reads KeyValues laid out as ``0a KL key 12 VL <AnyValue>`` with
    one- or two-byte lengths and an AnyValue of a single string, bool, 1-2 byte
    int or finite double field, checking every length so that it accepts only
    what a protobuf parser reads the same way. Anything else (and a repeated key)
    takes the generic path, which gives the same text. One call per ScopeSpans:
    the per-span work is inline (a call per span costs as much as two attributes).
    """
    texts: list = []
    derived: list = []
    add_text = texts.append
    add_derived = derived.append
    headers = _STRING_HEADERS
    small = _SMALL_VALUES
    derived_set = _MARK_SET
    special_bytes = _JSON_SPECIAL
    for raw_kvs in attribute_lists:
        if not raw_kvs:
            add_text(b"{}")
            add_derived(NO_MARKS)
            continue
        values: dict[bytes, bytes] = {}  # key -> string bytes, or marked JSON of another value
        marked: list[bytes] = []
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
                        if n == 5 and kv[p : p + 3] == _INT2 and kv[p + 3] > 127 > kv[p + 4]:
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
                    # {"k1":"v1","k2":"\x01123\x01"}: 4 quotes per entry, 2 marks per marked
                    # one. Strings are used as they are when the whole text holds no byte
                    # that JSON escapes, no quote but ours and no key starting with "$";
                    # else each key and string is checked and escaped alone.
                    text = b'{"' + b'","'.join(map(b'":"'.join, values.items())) + b'"}'
                    special = len(text) - len(text.translate(None, special_bytes))
                    if special != 4 * len(values) + 2 * len(marked) or (
                        b"$" in text and b'"$' in text
                    ):
                        text = _escaped_object_text(values, frozenset(marked))
                    if marked:  # drop the quotes around each marked value (memchr-fast split)
                        pieces = text.split(b"\x01")
                        pieces[0] = pieces[0][:-1]
                        for i in range(2, len(pieces) - 1, 2):
                            pieces[i] = pieces[i][1:-1]
                        pieces[-1] = pieces[-1][1:]
                        text = b"".join(pieces)
                    add_text(text)
                    if derived_set.isdisjoint(values):
                        add_derived(NO_MARKS)
                    else:
                        add_derived(_span_marks_fast(values, marked))
                    continue
        except IndexError:
            pass
        attrs = key_values(raw_kvs, 0)
        add_text(encode_json(attrs))
        add_derived(span_marks(attrs))
    return texts, derived


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
