"""`thread()` blocks: which thread the spans started inside them belong to.

A `thread(...)` block puts a small immutable marker into the OpenTelemetry
`Context` (so it follows contextvars: per task in asyncio, per thread in
threading, and along any context handed to a pool worker explicitly), plus the
thread id into W3C baggage under ``gen_ai.conversation.id`` so downstream
services continue the thread. Leaving the block detaches exactly what entering
attached, on success, on exceptions and when nested.

This module also owns the thread/turn state of spans (`TurnState`, recorded per
span object by `bind_span` and read back by `span_state`). `ThreadSpanProcessor`
decides each new span's turn from its parent span, never from an ambient
variable, and records it here; `current_turn_id()` and `ThreadContext.turn_id`
read it. The processor imports this module, never the other way round.
"""

from __future__ import annotations

import os
import re
import threading
import time
import weakref
from typing import Any

from opentelemetry import baggage, context, trace

__all__ = [
    "CONVERSATION_ID_KEY",
    "ThreadContext",
    "TurnState",
    "bind_span",
    "current_thread_id",
    "current_turn_id",
    "new_thread_id",
    "span_state",
    "thread",
]

#: Attribute and baggage key that carries the thread id (OTel GenAI semconv).
CONVERSATION_ID_KEY = "gen_ai.conversation.id"

MAX_THREAD_ID_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_BLOCK_KEY = context.create_key("otel_threads.block")


class _Auto:
    """Sentinel: `thread()` called without a thread id."""

    def __repr__(self) -> str:
        return "<auto>"


_AUTO: Any = _Auto()


def validate_thread_id(thread_id: object) -> str:
    """Return ``thread_id`` if it is a valid thread id, else raise.

    A thread id is a string of 1-256 characters with no control characters.
    """
    if not isinstance(thread_id, str):
        raise TypeError(f"thread id must be a str, got {type(thread_id).__name__}: {thread_id!r}")
    if not thread_id or len(thread_id) > MAX_THREAD_ID_LENGTH or _CONTROL.search(thread_id):
        shown = thread_id if len(thread_id) <= 60 else thread_id[:57] + "..."
        raise ValueError(
            f"thread id must be 1-{MAX_THREAD_ID_LENGTH} printable characters, "
            f"got {shown!r} ({len(thread_id)} characters)"
        )
    return thread_id


def validate_turn_id(turn_id: object) -> str:
    """Normalise a turn id (a span id) to 16 lowercase hex characters, or raise."""
    if isinstance(turn_id, bool):
        raise TypeError(f"previous_turn_id must be a 16-hex-digit str or an int, got {turn_id!r}")
    if isinstance(turn_id, int):
        if not 0 < turn_id < 2**64:
            raise ValueError(f"previous_turn_id must be a non-zero 64-bit span id, got {turn_id}")
        return format(turn_id, "016x")
    if not isinstance(turn_id, str):
        raise TypeError(
            "previous_turn_id must be a 16-hex-digit str or an int, "
            f"got {type(turn_id).__name__}: {turn_id!r}"
        )
    low = turn_id.lower()
    if not _SPAN_ID.fullmatch(low) or low == "0" * 16:
        raise ValueError(
            f"previous_turn_id must be a span id of 16 hex digits (not all zero), got {turn_id!r}"
        )
    return low


_uuid_lock = threading.Lock()
_uuid_last = [0, 0]  # last millisecond, counter within it


def new_thread_id() -> str:
    """A new UUIDv7 string (RFC 9562): 36 characters, ordered by creation time.

    Ids minted in the same millisecond by this process stay ordered: the 12-bit
    ``rand_a`` field counts up from a random start (RFC 9562 section 6.2, method 1).
    """
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        last_ms, counter = _uuid_last
        if ms <= last_ms:
            ms, counter = last_ms, counter + 1
            if counter > 0xFFF:
                ms, counter = ms + 1, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
        _uuid_last[0], _uuid_last[1] = ms, counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    h = format(value, "032x")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# -- span state ---------------------------------------------------------------


class TurnState:
    """The thread and turn that a span belongs to, shared by all spans of a turn.

    ``key`` is the block key the turn was started under (see `_Block`), compared
    to decide whether a new span continues its parent's turn; ``child_attrs`` are
    the attributes every other span of the turn gets.
    """

    __slots__ = ("child_attrs", "key", "thread_id", "turn_id")

    def __init__(
        self, key: object, thread_id: str | None, turn_id: str | None, child_attrs: dict[str, Any]
    ) -> None:
        self.key = key
        self.thread_id = thread_id
        self.turn_id = turn_id
        self.child_attrs = child_attrs


# span -> TurnState for every span a processor placed in a thread. Weak keys:
# an entry lives exactly as long as its span object, so a child started after
# its parent ended still finds the parent's turn, and nothing leaks.
_states: weakref.WeakKeyDictionary[Any, TurnState] = weakref.WeakKeyDictionary()
_states_data = _states.data  # keyed by weakref; ref(x) == ref(x) for a live x
_states_get = _states_data.get
_ref = weakref.ref


def span_state(span: object) -> TurnState | None:
    """The thread/turn state recorded for ``span`` (by `bind_span`), if any."""
    try:
        return _states_get(_ref(span))
    except TypeError:  # not weak-referenceable: not one of ours
        return None


#: ``bind_span(span, state)``: record that ``span`` belongs to ``state``'s thread
#: and turn, for as long as the span object lives.
bind_span = _states.__setitem__


class _Block:
    """What an active `thread()` block tells the processor. Immutable once made.

    ``key`` identifies the thread for the "same thread as the parent?" test: the
    thread id, or the `ThreadContext` itself when the thread is to be resolved
    along the chain of ``previous_turn_id`` links, or None for `thread(None)`.
    ``outer_baggage`` is the ``gen_ai.conversation.id`` baggage value that was in
    the context when the block was entered (what a remote caller sent).
    """

    __slots__ = ("handle", "key", "outer_baggage", "thread_id")

    def __init__(self, handle: ThreadContext, outer_baggage: object) -> None:
        self.handle = handle
        self.thread_id = handle.thread_id
        self.key = handle.key
        self.outer_baggage = outer_baggage

    def start_turn(self, turn_id: str) -> str | None:
        """Note a new turn started in this block; its `previous_turn_id`, if any."""
        handle = self.handle
        previous = handle._take_previous()
        handle.last_turn_id = turn_id
        return previous


class ThreadContext:
    """The handle that `thread()` returns; it is also the context manager.

    ``thread_id``: the thread's id (None for ``thread(None)``, and for
    ``thread(previous_turn_id=...)``, whose thread the store resolves along the
    chain of links). ``turn_id``: the turn of the current span, or None.
    ``last_turn_id``: the id of the most recent turn started in this block, which
    is what an app stores to link its next request.
    """

    __slots__ = (
        "_pending_previous",
        "_tokens",
        "key",
        "last_turn_id",
        "previous_turn_id",
        "thread_id",
    )

    def __init__(self, thread_id: Any = _AUTO, *, previous_turn_id: Any = None) -> None:
        prev = None if previous_turn_id is None else validate_turn_id(previous_turn_id)
        chain = False
        if thread_id is _AUTO:
            chain = prev is not None
            thread_id = None if chain else new_thread_id()
        elif thread_id is None:
            if prev is not None:
                raise ValueError(
                    "thread(None) means 'no thread', so it cannot take previous_turn_id; "
                    "use thread(previous_turn_id=...) to continue the linked thread"
                )
        else:
            validate_thread_id(thread_id)
        self.thread_id: str | None = thread_id
        # What "the same thread" means for this block's spans: the id, or this
        # handle when the thread is only known through the chain of links.
        self.key: object = self if chain else thread_id
        self.previous_turn_id: str | None = prev
        self.last_turn_id: str | None = None
        self._pending_previous: list[str] = [] if prev is None else [prev]
        self._tokens: list[object] = []

    @property
    def turn_id(self) -> str | None:
        """The turn of the current span when that span is in this thread, else None."""
        st = span_state(trace.get_current_span())
        if st is None or self.key is None or st.key != self.key:
            return None
        return st.turn_id

    def _take_previous(self) -> str | None:
        """The `previous_turn_id` for a new turn: only the first turn gets it."""
        if not self._pending_previous:  # the usual case, without raising
            return None
        try:
            return self._pending_previous.pop()  # atomic: exactly one turn gets it
        except IndexError:
            return None

    def __enter__(self) -> ThreadContext:
        ctx = context.get_current()
        outer = baggage.get_baggage(CONVERSATION_ID_KEY, ctx)
        block = _Block(self, outer)
        ctx = context.set_value(_BLOCK_KEY, block, ctx)
        if self.thread_id is not None:
            ctx = baggage.set_baggage(CONVERSATION_ID_KEY, self.thread_id, ctx)
        elif outer is not None:
            ctx = baggage.remove_baggage(CONVERSATION_ID_KEY, ctx)
        self._tokens.append(context.attach(ctx))
        return self

    def __exit__(self, *exc_info: object) -> None:
        context.detach(self._tokens.pop())

    async def __aenter__(self) -> ThreadContext:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    def __repr__(self) -> str:
        return (
            f"ThreadContext(thread_id={self.thread_id!r}, last_turn_id={self.last_turn_id!r}, "
            f"previous_turn_id={self.previous_turn_id!r})"
        )


def thread(thread_id: Any = _AUTO, *, previous_turn_id: Any = None) -> ThreadContext:
    """Group the spans started inside the block into a thread.

    ``thread("support_42")`` uses that id (resume the same thread later, from any
    process); ``thread()`` mints a UUIDv7; ``thread(None)`` means spans started
    inside belong to no thread. ``previous_turn_id`` links the first turn started
    in the block to an earlier turn; without a thread id, no id is minted and the
    store resolves the thread along the chain of links.

    Raises ``TypeError`` for a non-string id and ``ValueError`` for ``""``, more
    than 256 characters, or control characters.
    """
    return ThreadContext(thread_id, previous_turn_id=previous_turn_id)


def active_block(ctx: context.Context | None = None) -> _Block | None:
    value = context.get_value(_BLOCK_KEY, ctx)
    return value if isinstance(value, _Block) else None


def current_thread_id() -> str | None:
    """The thread id in the current context, or None.

    An active `thread()` block wins; else the thread of the current span; else,
    under a remote parent, the ``gen_ai.conversation.id`` baggage entry.
    """
    block = active_block()
    if block is not None:
        return block.thread_id
    span = trace.get_current_span()
    st = span_state(span)
    if st is not None:
        return st.thread_id
    if span.get_span_context().is_remote:
        value = baggage.get_baggage(CONVERSATION_ID_KEY)
        return value if isinstance(value, str) else None
    return None


def current_turn_id() -> str | None:
    """The turn id of the current span (16 hex characters), or None."""
    st = span_state(trace.get_current_span())
    return None if st is None else st.turn_id
