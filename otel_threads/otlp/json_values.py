"""OTLP/JSON reading helpers: loading, typed fields, values (internal).

Used by ``jsonformat``. Every helper raises :class:`ShapeError` (with what was
expected and what came) when the JSON does not have the OTLP shape; the reader
turns it into a DecodeError naming where. ``null`` always means "not set".
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re

from otel_threads.otlp.values import (
    I64_MAX,
    MAX_DEPTH,
    DecodeError,
    escape_key,
    json_bytes,
    json_double,
    truncated,
)


class ShapeError(ValueError):
    """The JSON does not have the OTLP shape (becomes a DecodeError with a location)."""


def show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- loading ---------------------------------------------------------------------

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_CUT_DEPTH = 400
"""JSON containers deeper than this are replaced by null before parsing when
Python's parser would exceed its recursion limit. They lie inside AnyValues that
are more than MAX_DEPTH levels deep (each level takes three JSON levels at least),
whose content is replaced by the truncation marker anyway."""


@functools.lru_cache(maxsize=256)
def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _camel_hook(obj: dict) -> dict:
    return {(_camel(k) if "_" in k else k): v for k, v in obj.items()}


def _cut_deep(text: str) -> str:
    """The JSON text with every container deeper than _CUT_DEPTH replaced by null."""
    parts = []
    depth = 0
    cut_at = -1
    last = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth == _CUT_DEPTH + 1:
                cut_at = match.start()
        elif token == "]" or token == "}":
            if depth == _CUT_DEPTH + 1 and cut_at >= 0:
                parts.append(text[last:cut_at])
                parts.append("null")
                last = match.end()
                cut_at = -1
            depth -= 1
    parts.append(text[last:])
    return "".join(parts)


_SNAKE_ROOTS = frozenset(("resource_spans", "resource_logs"))


def json_parse_bytes(data: bytes) -> int:
    """About the most memory `load_json` (and a decode worker holding ``data``) takes
    for ``data``, counted from its tokens at C speed, before parsing: the text and its
    strings (4 bytes a character when one is beyond the BMP), and per object, array,
    value string, key and digit what CPython's objects cost. Never far below the peak
    json.loads reaches (tests/test_decode_split.py measures it with tracemalloc on
    ordinary and hostile shapes): an ordinary OTLP/JSON body comes out at about 15x its
    size, a hostile one (``[[],[],...]``) at up to about 40x."""
    width = 1 if data.isascii() else 4
    keys = data.count(b'":')
    value_strings = max(data.count(b'"') // 2 - keys, 0)
    digits = sum(data.count(d) for d in b"0123456789")
    tree = (
        200 * data.count(b"{")
        + 80 * data.count(b"[")
        + 16 * data.count(b",")
        + 8 * keys
        + 60 * value_strings
        + 12 * digits
    )
    if b'"resource_spans"' in data or b'"resource_logs"' in data:
        tree *= 2  # read twice (renaming keys), the first tree held meanwhile
    return (2 * width + 1) * len(data) + tree


def load_json(data: bytes) -> dict:
    """The request object of an OTLP/JSON body (UTF-8, optional BOM), keys in lowerCamelCase."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"request is not valid OTLP/JSON: body is not UTF-8: {exc}") from None
    text = text.removeprefix("\ufeff")
    root = _parse(text, None)
    if type(root) is not dict:
        raise DecodeError(f"request is not valid OTLP/JSON: expected an object, got {show(root)}")
    if not root.keys().isdisjoint(_SNAKE_ROOTS):
        # Field names as in the .proto (snake_case): read again, renaming every key.
        root = _parse(text, _camel_hook)
    return root


def _parse(text: str, hook) -> object:
    try:
        try:
            return json.loads(text, object_hook=hook)
        except RecursionError:
            return json.loads(_cut_deep(text), object_hook=hook)
    except RecursionError:
        raise DecodeError("request is not valid OTLP/JSON: nesting is too deep") from None
    except ValueError as exc:
        raise DecodeError(f"request is not valid OTLP/JSON: {exc}") from None


# --- fields ----------------------------------------------------------------------


def field_object(value: object, what: str) -> dict:
    if value is None:
        return {}
    if type(value) is not dict:
        raise ShapeError(f"{what} must be an object, got {show(value)}")
    return value


def field_list(value: object, what: str) -> list:
    if value is None:
        return []
    if type(value) is not list:
        raise ShapeError(f"{what} must be a list, got {show(value)}")
    return value


def field_text(value: object, what: str) -> str:
    if value is None:
        return ""
    if type(value) is not str:
        raise ShapeError(f"{what} must be a string, got {show(value)}")
    return value


def field_int(value: object, what: str, low: int, high: int) -> int:
    """An integer field: a JSON number or a decimal string, within [low, high]."""
    kind = type(value)
    if kind is int:
        number = value
    elif kind is str:
        try:
            number = int(value)
        except ValueError:
            raise ShapeError(f"{what} must be an integer, got {show(value)}") from None
    elif value is None:
        return 0
    elif kind is float and value.is_integer():
        number = int(value)
    else:
        raise ShapeError(f"{what} must be an integer, got {show(value)}")
    if not low <= number <= high:
        raise ShapeError(f"{what} {number} is out of range")
    return number


U32 = (0, (1 << 32) - 1)
U64 = (0, (1 << 64) - 1)
I32 = (-(1 << 31), (1 << 31) - 1)
I64 = (-(1 << 63), I64_MAX)


def field_enum(value: object, what: str, names) -> int:
    if type(value) is str and not value.lstrip("-").isdigit():
        try:
            return names.Value(value)
        except ValueError:
            raise ShapeError(f"{what} {value!r} is not a known value") from None
    return field_int(value, what, *I32)


def hex_id(value: object) -> bytes | None:
    """The bytes of a hex id; b"" when absent, None when not a hex string."""
    if value is None or value == "":
        return b""
    if type(value) is not str:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(value) == 2 * len(raw) else None  # no spaces inside


def hex_problem(**ids: object) -> str:
    for name, value in ids.items():
        if hex_id(value) is None:
            return f"{name} must be a hex string, got {show(value)}"
    raise AssertionError("no malformed id")


# --- values ----------------------------------------------------------------------

_ANY_FIELDS = {
    "stringValue": 1,
    "boolValue": 2,
    "intValue": 3,
    "doubleValue": 4,
    "arrayValue": 5,
    "kvlistValue": 6,
    "bytesValue": 7,
}


def any_value(value: object, level: int) -> object:
    """An OTLP/JSON AnyValue as a JSON-ready value (same as the protobuf reader's)."""
    if value is None:
        return None
    if type(value) is not dict:
        raise ShapeError(f"a value must be an AnyValue object, got {show(value)}")
    if len(value) == 1:
        ((field, x),) = value.items()
        kind = _ANY_FIELDS.get(field)
        if kind is None or x is None:  # unknown fields are ignored, as protobuf does
            return None
    else:
        fields = _ANY_FIELDS
        known = [(fields[k], v) for k, v in value.items() if k in fields and v is not None]
        if not known:
            return None
        if len(known) > 1:
            raise ShapeError(f"an AnyValue must hold one value, got {show(value)}")
        kind, x = known[0]
    if level > MAX_DEPTH:
        return truncated()
    if kind == 1:
        return field_text(x, "stringValue")
    if kind == 2:
        if type(x) is not bool:
            raise ShapeError(f"boolValue must be true or false, got {show(x)}")
        return x
    if kind == 3:
        return field_int(x, "intValue", *I64)
    if kind == 4:
        if type(x) is float or type(x) is int:
            return json_double(float(x))
        try:
            return json_double(float(field_text(x, "doubleValue")))
        except ValueError:
            raise ShapeError(f"doubleValue must be a number, got {show(x)}") from None
    if kind == 5:
        items = field_list(field_object(x, "arrayValue").get("values"), "arrayValue.values")
        return [any_value(item, level + 1) for item in items]
    if kind == 6:
        return attributes(field_object(x, "kvlistValue").get("values"), level + 1)
    text = field_text(x, "bytesValue")
    try:
        raw = base64.b64decode(text.translate(_URLSAFE) + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ShapeError(f"bytesValue must be base64, got {show(x)}") from None
    return json_bytes(raw)


_URLSAFE = str.maketrans("-_", "+/")


def attributes(items: object, level: int) -> dict:
    """A JSON list of KeyValue objects as a dict (escaped keys; a repeated key: last value)."""
    if not items:
        if items is None or items == []:
            return {}
        raise ShapeError(f"attributes must be a list, got {show(items)}")
    if type(items) is not list:
        raise ShapeError(f"attributes must be a list, got {show(items)}")
    out = {}
    for kv in items:
        if type(kv) is not dict:
            raise ShapeError(f"an attribute must be a {{key, value}} object, got {show(kv)}")
        key = kv.get("key")
        if type(key) is not str:
            key = field_text(key, "attribute key")
        if key[:1] == "$":
            key = escape_key(key)
        value = kv.get("value")
        if type(value) is dict and len(value) == 1:
            text = value.get("stringValue")
            if type(text) is str:
                out[key] = text
                continue
        out[key] = any_value(value, level)
    return out
