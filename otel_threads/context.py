"""`thread()` blocks: which thread the spans started inside them belong to.

A `thread(...)` block puts a small immutable marker into the OpenTelemetry
`Context` (so it follows contextvars: per task in asyncio, per thread in
threading, and along any context handed to a pool worker explicitly), plus the
thread id into W3C baggage under ``gen_ai.conversation.id`` so downstream
services continue the thread. Leaving the block detaches exactly what entering
attached, on success, on exceptions and when nested.

`ThreadContext.end()` (and ``thread(..., end=True)`` as the block closes) says the
thread has ended: ``otel_threads.thread_ended = true`` goes on a span of the thread
(see `ThreadContext.end` for which one); an end waiting for the next span of its
thread is kept here (`pending_ends`, taken by the processor), per process.

This module also owns the thread/turn state of spans (`TurnState`, recorded per
span object by `bind_span` and read back by `span_state`). `ThreadSpanProcessor`
decides each new span's turn from its parent span, never from an ambient
variable, and records it here; `current_turn_id()` and `ThreadContext.turn_id`
read it. The processor imports this module, never the other way round.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from opentelemetry import baggage, context, trace

from otel_threads.ids import new_thread_id, validate_thread_id, validate_turn_id

__all__ = [
    "CONVERSATION_ID_KEY",
    "THREAD_ENDED_KEY",
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
#: Attribute that says the thread ended (`ThreadContext.end`): true, on one span.
THREAD_ENDED_KEY = "otel_threads.thread_ended"
#: Name of the zero-duration span that ``thread(..., end=True)`` starts in the block's
#: last turn when that turn's spans have all ended.
THREAD_END_SPAN = "otel_threads.thread_end"
#: Ends waiting for the next span of their thread, at most this many (the oldest go).
MAX_PENDING_ENDS = 10_000

_BLOCK_KEY = context.create_key("otel_threads.block")
_logger = logging.getLogger(__name__)


class _Auto:
    """Sentinel: `thread()` called without a thread id."""

    def __repr__(self) -> str:
        return "<auto>"


_AUTO: Any = _Auto()


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

    def start_turn(self, turn_id: str, span: object, processor: object) -> str | None:
        """Note a new turn started in this block; its `previous_turn_id`, if any.

        A block that ends its thread on exit keeps the turn span and the processor
        that started it (for the end marker, `ThreadContext._end_on_exit`)."""
        handle = self.handle
        previous = handle._take_previous()
        handle.last_turn_id = turn_id
        if handle._end_on_exit:
            handle._last_turn = (span, processor)
        return previous


# block key -> the ThreadContext whose end waits for the next span of that thread
# (`ThreadContext.end`); the processor takes it (`take_pending_end`).
pending_ends: dict[object, ThreadContext] = {}


def take_pending_end(key: object) -> ThreadContext | None:
    """The end waiting for the next span of thread ``key``, taken off (once)."""
    return pending_ends.pop(key, None)


_end_failures = [0]


def _end_failed() -> None:
    """Log the first failure to mark an end (with its traceback); count them all."""
    _end_failures[0] += 1
    if _end_failures[0] == 1:
        _logger.warning(
            "otel_threads failed to mark a thread's end; further failures are not logged",
            exc_info=True,
        )


def _add_pending_end(key: object, handle: ThreadContext) -> None:
    while len(pending_ends) >= MAX_PENDING_ENDS:
        try:
            del pending_ends[next(iter(pending_ends))]
        except (KeyError, StopIteration, RuntimeError):  # taken meanwhile
            break
    pending_ends[key] = handle


class ThreadContext:
    """The handle that `thread()` returns; it is also the context manager.

    ``thread_id``: the thread's id (None for ``thread(None)``, and for
    ``thread(previous_turn_id=...)``, whose thread the store resolves along the
    chain of links). ``turn_id``: the turn of the current span, or None.
    ``last_turn_id``: the id of the most recent turn started in this block, which
    is what an app stores to link its next request. `end()` says the thread has ended.
    """

    __slots__ = (
        "_end_on_exit",
        "_ended_turn",
        "_last_turn",
        "_pending_previous",
        "_tokens",
        "key",
        "last_turn_id",
        "previous_turn_id",
        "thread_id",
    )

    def __init__(
        self, thread_id: Any = _AUTO, *, previous_turn_id: Any = None, end: bool = False
    ) -> None:
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
        self._end_on_exit = bool(end)
        # the turn that carries this handle's end mark, once one does ("" when the
        # mark went on a span of a turn held in another process)
        self._ended_turn: str | None = None
        # (span, processor) of the block's last turn, kept only when _end_on_exit
        self._last_turn: tuple[Any, Any] | None = None

    @property
    def turn_id(self) -> str | None:
        """The turn of the current span when that span is in this thread, else None."""
        st = span_state(trace.get_current_span())
        if st is None or self.key is None or st.key != self.key:
            return None
        return st.turn_id

    def end(self) -> None:
        """Say that the thread has ended: ``otel_threads.thread_ended = true`` goes on
        one span of the thread, and the store shows the thread as ended (``threads.ended``)
        until it gets a new turn.

        When a span of this thread is recording in the current context (``end()`` called
        inside the turn's handler), that span gets the mark at once. Otherwise the mark
        waits for the next span started in this thread in this process (in this block or
        a later ``thread()`` block with the same id), which gets it on start: call
        ``end()`` inside the turn, or use ``thread(..., end=True)``, which marks the
        block's last turn as it closes. Calling it again before the mark has gone on a
        span, again in the same turn, or after it while the block's last turn carries
        the mark, changes nothing. No-op for ``thread(None)``.
        Never raises.
        """
        try:
            key = self.key
            if key is None:
                return
            span = trace.get_current_span()
            st = span_state(span)
            if st is not None and st.key == key and span.is_recording():
                turn = st.turn_id or ""
                if self._ended_turn != turn or not turn:
                    span.set_attribute(THREAD_ENDED_KEY, True)
                    self._ended_turn = turn
                pending_ends.pop(key, None)
                return
            if self._ended_turn is not None and self._ended_turn == self.last_turn_id:
                return  # this block's last turn carries the mark already
            _add_pending_end(key, self)
        except Exception:  # never raise into user code
            _end_failed()

    def _end_block(self) -> None:
        """``thread(..., end=True)`` closing: mark the block's last turn ended.

        Its turn span still recording gets the mark; else a zero-duration span
        `THREAD_END_SPAN` is started as a child of the turn span (so it is part of that
        turn, not a new one), through the tracer provider of the processor that started
        the turn (`ThreadSpanProcessor` ``tracer_provider``, else the global one). When
        no turn started in the block, or no recording marker can be started (no SDK
        provider), the end waits for the next span of the thread, as `end()` does.
        """
        last, self._last_turn = self._last_turn, None
        key = self.key
        if key is None:
            return
        if last is None or self.last_turn_id is None:
            if key not in pending_ends:
                _add_pending_end(key, self)
            return
        if self._ended_turn == self.last_turn_id:
            return  # already marked, nothing new since
        span, processor = last
        if span.is_recording():
            span.set_attribute(THREAD_ENDED_KEY, True)
        else:
            tracer = processor.marker_tracer()
            now = time.time_ns()
            ctx = trace.set_span_in_context(span, context.get_current())
            pending_ends.pop(key, None)
            marker = tracer.start_span(
                THREAD_END_SPAN, ctx, attributes={THREAD_ENDED_KEY: True}, start_time=now
            )
            if not marker.is_recording():
                _add_pending_end(key, self)
                return
            marker.end(end_time=now)
        self._ended_turn = self.last_turn_id
        pending_ends.pop(key, None)

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
        try:
            if self._end_on_exit:
                try:
                    self._end_block()
                except Exception:  # never raise into user code
                    _end_failed()
        finally:
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


def thread(
    thread_id: Any = _AUTO, *, previous_turn_id: Any = None, end: bool = False
) -> ThreadContext:
    """Group the spans started inside the block into a thread.

    ``thread("support_42")`` uses that id (resume the same thread later, from any
    process); ``thread()`` mints a UUIDv7; ``thread(None)`` means spans started
    inside belong to no thread. ``previous_turn_id`` links the first turn started
    in the block to an earlier turn; without a thread id, no id is minted and the
    store resolves the thread along the chain of links. ``end=True`` ends the thread
    as the block closes (also on an exception): its last turn gets the end mark, as
    `ThreadContext.end` explains.

    Raises ``TypeError`` for a non-string id and ``ValueError`` for ``""``, more
    than 256 characters, or control characters.
    """
    return ThreadContext(thread_id, previous_turn_id=previous_turn_id, end=end)


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
