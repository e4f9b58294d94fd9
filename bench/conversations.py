"""Synthetic LLM conversations as OTLP/protobuf: what bench/soak.py sends and
bench/clickhouse.py stores.

A conversation (thread) is 10, 100 or 2,000 turns long (`LENGTHS`: 60/30/10 % of the
threads started). A turn is one trace of four spans (`turn_spans`): the turn span
(``otel_threads.is_turn``), an LLM call with semconv messages and token counts, and two
tool calls, with 10, 8, 9 and 9 attributes. `Conversations` keeps ``ACTIVE_THREADS`` of
them going at once, as one exporter does: each `Conversations.next_turns` is
``TURNS_PER_REQUEST`` turns, one turn of each conversation in turn, a finished
conversation replaced by a new one; `request` wraps spans into an ``ExportTraceServiceRequest``.
"""

from __future__ import annotations

import random
import struct
import time
import uuid

TURNS_PER_REQUEST = 128
SPANS_PER_TURN = 4
ACTIVE_THREADS = 32
LENGTHS = ((10, 0.6), (100, 0.3), (2000, 0.1))


# -- OTLP protobuf, encoded by hand (the bench's own CPU must not be the limit) -------
# The soak's senders run on the collector's machine: what they spend is taken from it.
# So the bytes that do not change from turn to turn are encoded once (a conversation's
# attributes, the constant ones of each span), and the rest with table lookups:
# 1.5 us a span against 7.1 encoding every field each time (tests/test_bench_requests.py
# checks the requests decode to the spans described here).

#: varints of 0..16383, each one or two bytes (longer ones are built)
_VARINTS = [bytes([n]) for n in range(0x80)] + [
    bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(0x80, 0x4000)
]


def _varint(n: int) -> bytes:
    if n < 0x4000:
        return _VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: the tag of each length-delimited field number used here
_TAGS = {field: _varint(field << 3 | 2) for field in (1, 2, 5, 9)}


def _len(field: int, payload: bytes) -> bytes:
    return _TAGS[field] + _varint(len(payload)) + payload


def _attr(key: str, value: str | int | bool) -> bytes:
    if isinstance(value, bool):
        any_value = _varint(2 << 3) + _varint(int(value))
    elif isinstance(value, int):
        any_value = _varint(3 << 3) + _varint(value)
    else:
        any_value = _len(1, value.encode())
    return _len(9, _len(1, key.encode()) + _len(2, any_value))


_U64 = struct.Struct("<Q")


def _span(
    trace_id: bytes, span_id: bytes, parent: bytes | None, name: bytes, start: int, attrs: bytes
) -> bytes:
    """A Span (``name``: the name field, encoded) of 50 ms from ``start``."""
    body = b"".join(
        (
            b"\x0a\x10",
            trace_id,
            b"\x12\x08",
            span_id,
            b"\x22\x08" + parent if parent else b"",
            name,
            b"\x39",
            _U64.pack(start),
            b"\x41",
            _U64.pack(start + 50_000_000),
            attrs,
        )
    )
    return _len(2, body)


_COMMON = b"".join(
    _attr(k, v)
    for k, v in (
        ("app.tenant", "acme"),
        ("app.plan", "pro"),
        ("deployment.region", "eu-west-1"),
        ("http.route", "/chat"),
        ("app.version", "1.2.3"),
        ("app.feature_flag", False),
        ("app.shard", 7),
    )
)
_IS_TURN = _attr("otel_threads.is_turn", True)
_LLM = b"".join(
    _attr(k, v)
    for k, v in (
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", "gpt-4o-mini"),
        ("gen_ai.usage.input_tokens", 120),
        ("gen_ai.usage.output_tokens", 40),
    )
)
_TENANT = _attr("app.tenant", "acme")
_TOOL = _attr("gen_ai.tool.name", "lookup_order")
_NAMES = {
    name: _len(5, name)
    for name in (
        b"handle_message",
        b"chat gpt-4o-mini",
        b"execute_tool lookup_order",
        b"execute_tool reply",
    )
}


def _resource() -> bytes:
    kv = _len(1, b"service.name") + _len(2, _len(1, b"soak"))
    return _len(1, _len(1, kv))  # ResourceSpans.resource = Resource{attributes=[kv]}


class Conversation:
    __slots__ = (
        "attrs",
        "clock",
        "length",
        "llm_attrs",
        "thread_id",
        "tool_attrs",
        "turn_attrs",
        "turns",
    )

    def __init__(self, thread_id: str, length: int) -> None:
        self.thread_id, self.length, self.turns = thread_id, length, 0
        self.clock = time.time_ns()
        self.attrs = _attr("gen_ai.conversation.id", thread_id)
        # (what its spans carry that is the same in every turn: encoded once)
        self.turn_attrs = self.attrs + _COMMON + _IS_TURN
        self.llm_attrs = self.attrs + _LLM
        self.tool_attrs = self.attrs + _COMMON + _TOOL


def turn_spans(conv: Conversation, ids: Ids) -> bytes:
    """One turn: the turn span (``otel_threads.is_turn``, ``turn.n``), an LLM call with
    semconv messages (the turn's number and the thread id in the question) and token
    counts, and two tool calls: 10, 8, 9 and 9 attributes (the conversation id on
    each, `_COMMON`'s on the turn and the tools)."""
    conv.clock = max(conv.clock + 1_000_000, time.time_ns())
    start, n = conv.clock, conv.turns
    trace_id = ids.trace()
    root, llm, tool_a, tool_b = ids.span(), ids.span(), ids.span(), ids.span()
    turn_attrs = conv.turn_attrs + _attr("turn.n", n)
    llm_attrs = (
        conv.llm_attrs
        + _attr(
            "gen_ai.input.messages",
            f'[{{"role":"user","parts":[{{"type":"text","content":"question {n} of '
            f'{conv.thread_id}: where is my order?"}}]}}]',
        )
        + _attr(
            "gen_ai.output.messages",
            f'[{{"role":"assistant","finish_reason":"stop","parts":[{{"type":"text",'
            f'"content":"answer {n}: it ships tomorrow."}}]}}]',
        )
        + _TENANT
    )
    conv.turns += 1
    names = _NAMES
    return b"".join(
        (
            _span(trace_id, root, None, names[b"handle_message"], start, turn_attrs),
            _span(trace_id, llm, root, names[b"chat gpt-4o-mini"], start + 1_000_000, llm_attrs),
            _span(
                trace_id,
                tool_a,
                llm,
                names[b"execute_tool lookup_order"],
                start + 2_000_000,
                conv.tool_attrs,
            ),
            _span(
                trace_id,
                tool_b,
                root,
                names[b"execute_tool reply"],
                start + 3_000_000,
                conv.tool_attrs,
            ),
        )
    )


def request(spans: bytes) -> bytes:
    scope = _len(1, _len(1, b"soak")) + spans  # ScopeSpans{scope, spans...}
    return _len(1, _resource() + _len(2, scope))


class Ids:
    """Trace and span ids of one sender thread: random, as the W3C trace context asks
    of producers (and as the SDKs make them), from a generator seeded by ``prefix``.
    Ids that grow with time would flatter a store: its indexes would take each new key
    at one edge, and zone maps (min/max per row group) would find any key in a few row
    groups."""

    def __init__(self, prefix: int) -> None:
        self.rnd = random.Random(f"ids-{prefix}")

    def trace(self) -> bytes:
        return self.rnd.getrandbits(128).to_bytes(16, "big")

    def span(self) -> bytes:
        return self.rnd.getrandbits(64).to_bytes(8, "big")


def thread_id(rnd: random.Random) -> str:
    """A conversation id as applications make them: a random UUID (version 4), so that
    no thread's rows sort apart from the others'."""
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


class Conversations:
    """The ``ACTIVE_THREADS`` conversations of one exporter (see the module docstring);
    random thread ids (`thread_id`), seeded by ``prefix``."""

    def __init__(self, prefix: int) -> None:
        self.prefix = prefix
        self.rnd = random.Random(prefix)
        self.ids = Ids(prefix)
        #: conversations begun so far (each gets its first turn in the call that begins it)
        self.started = 0
        self.active: list[Conversation] = []

    def _new(self) -> Conversation:
        self.started += 1
        length = self.rnd.choices([n for n, _ in LENGTHS], [w for _, w in LENGTHS])[0]
        return Conversation(thread_id(self.rnd), length)

    def next_turns(self) -> tuple[bytes, list[Conversation]]:
        """The spans of the next ``TURNS_PER_REQUEST`` turns (for `request`), and the
        conversation of each turn (after it: ``turns`` counts it, 1 for a new one)."""
        if not self.active:
            self.active = [self._new() for _ in range(ACTIVE_THREADS)]
        parts, convs = [], []
        for i in range(TURNS_PER_REQUEST):
            conv = self.active[i % ACTIVE_THREADS]
            if conv.turns >= conv.length:
                conv = self.active[i % ACTIVE_THREADS] = self._new()
            parts.append(turn_spans(conv, self.ids))
            convs.append(conv)
        return b"".join(parts), convs
