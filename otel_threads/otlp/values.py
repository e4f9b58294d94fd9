"""Values shared by the OTLP readers (internal to :mod:`otel_threads.otlp.decode`).

The error type, the attribute keys the decode step reads, the JSON encoding of
attribute values, the derived thread/turn columns, the validity rules that reject
a span or log record, and the log record id.

Attribute and AnyValue encoding (see ``encode_json``): string -> JSON string,
bool -> true/false, int -> integer, double -> number that always contains '.' or
'e' (``float.__repr__``), NaN/+-inf -> ``{"$double": "NaN"|"Infinity"|"-Infinity"}``,
bytes -> ``{"$bytes": base64}``, array -> array, kvlist and attribute lists ->
object, empty AnyValue -> null. Object keys starting with "$" get one more "$"
so a user's key never looks like one of the tags above. Values nested deeper than
:data:`MAX_DEPTH` containers become ``{"$truncated": "depth"}``.
"""

from __future__ import annotations

import base64
import json
import math
from hashlib import blake2b

MAX_DEPTH = 64
"""Array/kvlist levels kept inside one attribute value; deeper values become a marker."""

I64_MAX = (1 << 63) - 1
I32_MAX = (1 << 31) - 1

THREAD_ID_KEYS = (
    "gen_ai.conversation.id",
    "session.id",
    "langfuse.session.id",
    "traceloop.association.properties.session_id",
    "langsmith.metadata.thread_id",
    "langsmith.metadata.session_id",
    "langsmith.metadata.conversation_id",
    "ai.telemetry.metadata.sessionId",
    "ai.settings.context.sessionId",
    "ai.settings.context.conversationId",
    "ai.settings.context.threadId",
    "gcp.vertex.agent.session_id",
    "mlflow.trace.session",
    "wandb.thread_id",
)
"""Span attributes naming the thread, highest priority first (CONTRACT section 2).
``ai.settings.context.*`` is the Vercel AI SDK v7's runtime context; v6 used
``ai.telemetry.metadata.sessionId``. derive_span_threads.sql ranks them in this order too
(tests/test_decode.py holds the two together)."""

TURN_ID_KEY = "otel_threads.turn_id"
IS_TURN_KEYS = ("otel_threads.is_turn", "wandb.is_turn")
PREVIOUS_TURN_ID_KEY = "otel_threads.previous_turn_id"
PROJECT_KEYS = ("otel_threads.project", "openinference.project.name", "service.name")
EVENT_NAME_KEY = "event.name"

MARK_KEYS = frozenset((*THREAD_ID_KEYS, TURN_ID_KEY, *IS_TURN_KEYS, PREVIOUS_TURN_ID_KEY))
NO_MARKS = (None, None, None, None)


class DecodeError(ValueError):
    """The whole request cannot be decoded; the message says what is wrong.

    Receivers answer it with INVALID_ARGUMENT / HTTP 400.
    """


class Rejections:
    """Counts rejected items and keeps the first few messages (never one log per item)."""

    KEEP = 3

    def __init__(self, noun: str) -> None:
        self.noun = noun
        self.count = 0
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.messages) < self.KEEP:
            self.messages.append(message)

    def error(self) -> str | None:
        if not self.count:
            return None
        more = "; ..." if self.count > len(self.messages) else ""
        plural = self.noun if self.count == 1 else self.noun + "s"
        return f"{self.count} {plural} rejected: {'; '.join(self.messages)}{more}"


# --- values -> JSON --------------------------------------------------------------

encode_json = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False
).encode
"""Compact JSON text of a value built by the readers (never NaN: see ``json_double``)."""


def truncated() -> dict[str, str]:
    return {"$truncated": "depth"}


def json_double(x: float) -> object:
    """A double as JSON-ready value: the float itself, or a tag when not finite."""
    if math.isfinite(x):
        return x
    return {"$double": "NaN" if x != x else ("Infinity" if x > 0 else "-Infinity")}


def json_bytes(b: bytes) -> dict[str, str]:
    return {"$bytes": base64.b64encode(b).decode("ascii")}


def escape_key(key: str) -> str:
    """Keys starting with "$" get another "$", so they never collide with a tag."""
    return "$" + key if key[:1] == "$" else key


def nonempty_str(x: object) -> str | None:
    return x if type(x) is str and x else None


def thread_id_value(value: str) -> str:
    """A thread id as the app meant it: a value that is itself a JSON string literal
    (MLflow JSON-encodes its attributes: ``"\\"abc\\""``) is decoded, when that gives a
    non-empty string; any other value is kept as it is."""
    if value[:1] == '"' and value[-1:] == '"' and len(value) > 2:
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if type(decoded) is str and decoded:
            return decoded
    return value


def span_marks(attrs: dict) -> tuple[str | None, str | None, bool | None, str | None]:
    """(thread_id, turn_id, is_turn, previous_turn_id) from a span's own attributes.

    Only plain values count: non-empty strings for ids, a bool for is_turn.
    """
    if MARK_KEYS.isdisjoint(attrs):
        return NO_MARKS
    thread_id = None
    for key in THREAD_ID_KEYS:
        value = attrs.get(key)
        if type(value) is str and value:
            thread_id = thread_id_value(value)
            break
    is_turn = None
    for key in IS_TURN_KEYS:
        value = attrs.get(key)
        if type(value) is bool:
            is_turn = value
            break
    return (
        thread_id,
        nonempty_str(attrs.get(TURN_ID_KEY)),
        is_turn,
        nonempty_str(attrs.get(PREVIOUS_TURN_ID_KEY)),
    )


def record_id(scope_key: bytes, parts: tuple) -> str:
    """Stable content hash (blake2b-128, hex) of a log record and its resource/scope.

    ``parts`` are the record's identifying values (str, UTF-8 bytes, int or None);
    each is length-prefixed so that no two different records share an encoding.
    The same record delivered twice, as protobuf or as JSON, gets the same id.
    """
    chunks = [scope_key]
    for part in parts:
        if part is None:
            chunks.append(b"-")
        else:
            raw = part if type(part) is bytes else str(part).encode("utf-8", "surrogatepass")
            chunks.append(b"%d:%b" % (len(raw), raw))
    return blake2b(b"".join(chunks), digest_size=16).hexdigest()


def scope_key(*parts: object) -> bytes:
    """The resource/scope identity that prefixes every record_id of a scope."""
    return record_id(b"", parts).encode("ascii")


def log_row(
    identity: bytes,
    trace_id: str | None,
    span_id: str | None,
    time: int,
    observed: int,
    severity: int,
    severity_text: str,
    event_name: str,
    body: object,
    attrs: dict,
    flags: int,
    dropped: int,
) -> tuple:
    """One LOG row (shared by the protobuf and JSON readers, so both hash alike)."""
    body_json = None if body is None else encode_json(body)
    attributes = encode_json(attrs)
    event_name = event_name or nonempty_str(attrs.get(EVENT_NAME_KEY))
    severity_text = severity_text or None
    parts = (trace_id, span_id, time, observed, severity, severity_text, event_name,
             body_json, attributes, flags, dropped)  # fmt: skip
    return (*parts, record_id(identity, parts))


def span_problem(
    trace_id: bytes, span_id: bytes, parent: bytes, start: int, end: int
) -> str | None:
    """Why a span is rejected (invalid ids, times past int64), or None."""
    for name, value, size in (("trace_id", trace_id, 16), ("span_id", span_id, 8)):
        if len(value) != size:
            return f"{name} must be {size} bytes, got {len(value)}"
        if not value.strip(b"\0"):
            return f"{name} must not be all zeros"
    if parent and len(parent) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(parent)}"
    for name, value in (("start_time_unix_nano", start), ("end_time_unix_nano", end)):
        if value > I64_MAX:
            return f"{name} {value} is out of range (after year 2262)"
    return None


def log_problem(trace_id_len: int, span_id_len: int, time: int, observed: int) -> str | None:
    """Why a log record is rejected (ids of the wrong length, times past int64), or None."""
    if trace_id_len not in (0, 16):
        return f"trace_id must be empty or 16 bytes, got {trace_id_len}"
    if span_id_len not in (0, 8):
        return f"span_id must be empty or 8 bytes, got {span_id_len}"
    for name, value in (("time_unix_nano", time), ("observed_time_unix_nano", observed)):
        if not 0 <= value <= I64_MAX:
            return f"{name} {value} is out of range"
    return None


def resource_names(attrs: dict) -> tuple[str | None, str | None]:
    """(service_name, project) from resource attributes."""
    project = None
    for key in PROJECT_KEYS:
        project = nonempty_str(attrs.get(key))
        if project is not None:
            break
    return nonempty_str(attrs.get("service.name")), project
