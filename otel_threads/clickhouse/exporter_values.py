"""Attribute values as the Collector's ``clickhouseexporter`` stores them, and back.

The exporter writes every attribute into a ``Map(LowCardinality(String), String)`` as
``pcommon.Value.AsString()`` (pdata ``pcommon/value.go``), with the map's keys sorted:

- string: itself; bool: ``true`` / ``false``; int: decimal; empty value: ``''``
- double: like Go's ``json.Marshal`` of a float64 (``float64AsString``): the shortest
  digits, fixed notation (``1``, ``0.1``, ``100000000000000000000``) unless the magnitude
  is below 1e-6 or at least 1e21 (``1e-7``, ``1e+21``); NaN and infinities become the
  text ``json: unsupported value: NaN`` (``+Inf``, ``-Inf``)
- bytes: standard base64
- array / map: ``json.Marshal`` of the value's ``AsRaw()``: compact, map keys sorted,
  bytes as base64 strings, ``<``, ``>``, ``&`` escaped as ``\\u003c`` etc.; a NaN or an
  infinity anywhere inside makes the whole value ``''`` (Marshal fails)

Our values are the JSON our decoder writes (otel_threads.otlp.values): doubles always
with '.' or 'e', ``{"$double": "NaN"}``, ``{"$bytes": base64}``, keys starting with "$"
escaped with one more "$". ``as_string`` renders one as the exporter would;
``restore_attributes`` reads an exporter map back, giving the keys in ``RESTORED_TYPES``
their type again and leaving every other value a string. ``ENUM_STYLES``: how the
exporter spells SpanKind and StatusCode, now and in older versions.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal

from otel_threads.otlp.tables import SPAN_KINDS, STATUS_CODES
from otel_threads.otlp.values import IS_TURN_KEYS, escape_key

__all__ = [
    "ENUM_STYLES",
    "RESTORED_TYPES",
    "as_string",
    "exporter_map",
    "restore_attributes",
    "restore_json",
]

_KIND_WORDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_CODE_WORDS = ("Unset", "Ok", "Error")
ENUM_STYLES = {
    # pdata's SpanKind.String() / StatusCode.String(): what the exporter writes now
    "current": (
        dict(zip(SPAN_KINDS, _KIND_WORDS, strict=True)),
        dict(zip(STATUS_CODES, _CODE_WORDS, strict=True)),
    ),
    # traceutil.SpanKindStr / StatusCodeStr: the proto names, older exporters
    "legacy": (
        {k: f"SPAN_KIND_{k}" for k in SPAN_KINDS},
        {c: f"STATUS_CODE_{c}" for c in STATUS_CODES},
    ),
}
"""How an exporter version spells SpanKind / StatusCode: our name -> its spelling."""

NUMBER = "number"  # an integer's text -> int, any other number's text -> float
BOOL = "bool"  # 'true' / 'false' -> bool
ARRAY = "array"  # a JSON array's text -> the array

_TOKEN_COUNTS = (
    "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens",
    "llm.token_count.prompt", "ai.usage.inputTokens", "ai.usage.promptTokens",
    "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens", "llm.token_count.completion", "ai.usage.outputTokens",
    "ai.usage.completionTokens", "gen_ai.usage.total_tokens", "llm.usage.total_tokens",
    "llm.token_count.total", "ai.usage.totalTokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read",
    "ai.usage.cachedInputTokens", "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write", "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning", "ai.usage.reasoningTokens",
)  # fmt: skip

_RESTORE = (
    *(
        (key, BOOL, "span_marks (otlp/values.py): a turn is marked only by a bool")
        for key in IS_TURN_KEYS
    ),
    ("otel_threads.thread_ended", BOOL, "turn_facts.sql; the processor writes a bool"),
    *(
        (key, NUMBER, "genai_span_meta.sql reads this token count as BIGINT")
        for key in _TOKEN_COUNTS
    ),
    ("gen_ai.usage.cost", NUMBER, "genai_span_meta.sql reads the cost as DOUBLE"),
    ("llm.cost.total", NUMBER, "genai_span_meta.sql reads the cost as DOUBLE"),
    ("gen_ai.response.finish_reasons", ARRAY, "genai_span_meta.sql: a string[] (semconv)"),
    ("gen_ai.evaluation.score.value", NUMBER, "derive_annotations.sql reads it as DOUBLE"),
)
RESTORED_TYPES: dict[str, str] = {key: kind for key, kind, _why in _RESTORE}
"""Attribute key -> the type its exporter text is read back as (NUMBER, BOOL, ARRAY):
the keys our SQL (otel_threads/sql) and the span marks read as other than text. Every
other value comes back as a string. ``_RESTORE`` says why each key is here."""

# --- ours -> AsString ---------------------------------------------------------------

_TAGS = ("$bytes", "$double", "$truncated")
_INFINITE = {"NaN": "NaN", "Infinity": "+Inf", "-Infinity": "-Inf"}

_GO_ESCAPES = {chr(c): f"\\u{c:04x}" for c in range(0x20)}
_GO_ESCAPES.update({'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_GO_ESCAPES.update({"\b": "\\b", "\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"})
# encoding/json's HTML escaping, which json.Marshal applies (collector issue #14662)
_GO_ESCAPES.update({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
_GO_TABLE = str.maketrans(_GO_ESCAPES)


class _Unsupported(ValueError):
    """json.Marshal refuses the value (a NaN or an infinity inside)."""


def _tag(value: dict) -> str | None:
    if len(value) == 1:
        ((key, inner),) = value.items()
        if key in _TAGS and type(inner) is str:
            return key
    return None


def _unescape_key(key: str) -> str:
    return key[1:] if key[:1] == "$" else key


def go_float(x: float) -> str:
    """A finite float64 as Go's ``float64AsString`` (and ``json.Marshal``) writes it."""
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    if 1e-6 <= abs(x) < 1e21:
        return format(Decimal(repr(x)).normalize(), "f")
    # repr's exponent form here is Go's 'e' format (two exponent digits at least), but
    # for Go's clean-up of a one-digit negative exponent: e-07 -> e-7
    mantissa, exponent = repr(x).split("e")
    if exponent[:2] == "-0":
        exponent = "-" + exponent[2:]
    return f"{mantissa}e{exponent}"


def _go_json(value: object) -> str:
    """``json.Marshal`` of the ``AsRaw()`` of our JSON value."""
    kind = type(value)
    if kind is str:
        return '"' + value.translate(_GO_TABLE) + '"'
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return go_float(value)
    if kind is list:
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    tag = _tag(value)
    if tag == "$bytes":
        return _go_json(value[tag])
    if tag == "$double":
        raise _Unsupported(value[tag])
    if tag:  # $truncated: the deeper value is gone; its marker stands in
        return "{" + _go_json(tag) + ":" + _go_json(value[tag]) + "}"
    items = sorted((_unescape_key(k), v) for k, v in value.items())
    return "{" + ",".join(_go_json(k) + ":" + _go_json(v) for k, v in items) + "}"


def as_string(value: object) -> str:
    """One of our JSON values (parsed) as the exporter's ``Value.AsString()`` text."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is dict:
        tag = _tag(value)
        if tag == "$bytes":
            return value[tag]
        if tag == "$double":
            return "json: unsupported value: " + _INFINITE.get(value[tag], value[tag])
    try:
        return _go_json(value)
    except _Unsupported:
        return ""


def exporter_map(attributes: dict) -> list[tuple[str, str]]:
    """Our attributes (a parsed JSON object) as the exporter's map: (key, AsString) pairs,
    sorted by key (``internal.AttributesToMap``)."""
    return sorted((_unescape_key(k), as_string(v)) for k, v in attributes.items())


# --- AsString -> ours -----------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]+)?(e[-+][0-9]+)?")
_NOT_FINITE = {"json: unsupported value: " + v: {"$double": k} for k, v in _INFINITE.items()}


def restore_json(value: object) -> object:
    """A value parsed from Go's JSON -> our JSON conventions (keys starting with "$"
    escaped again). Bytes stay base64 strings and whole doubles integers: the JSON
    does not say."""
    if type(value) is list:
        return [restore_json(v) for v in value]
    if type(value) is dict:
        return {escape_key(k): restore_json(v) for k, v in value.items()}
    return value


def _restore(kind: str, text: str) -> object:
    if kind == BOOL:
        return {"true": True, "false": False}.get(text, text)
    if kind == NUMBER:
        if _INTEGER.fullmatch(text):
            return int(text)
        if _FLOAT.fullmatch(text):
            return float(text)
        return _NOT_FINITE.get(text, text)
    if text[:1] == "[":  # ARRAY
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if type(value) is list:
            return restore_json(value)
    return text


def scalar_array(text: str) -> list | None:
    """The list a value's text is when it is a JSON array of strings, numbers and booleans
    (as the exporter writes an array attribute), else None."""
    if text[:1] != "[" or text[-1:] != "]":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if type(value) is list and all(type(v) in (str, int, float, bool) for v in value):
        return value
    return None


def restore_attributes(pairs: list | None) -> dict:
    """An exporter map ((key, text) pairs) -> our attributes: keys escaped as our
    decoder does, the ``RESTORED_TYPES`` keys typed, an array of plain values (tags, stop
    sequences) an array again, every other value a string."""
    out = {}
    for key, text in pairs or ():
        kind = RESTORED_TYPES.get(key)
        if kind is not None:
            out[escape_key(key)] = _restore(kind, text)
        else:
            array = scalar_array(text)
            out[escape_key(key)] = text if array is None else array
    return out
