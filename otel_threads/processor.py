"""`ThreadSpanProcessor`: writes thread and turn semantics onto spans as they start.

Add it *before* the exporting processor::

    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))

The thread of a new span is, first rule that applies: (1) an active `thread()`
block in the span's parent context (``thread(None)`` means no thread); (2) the
thread of an in-process parent span; (3) the ``gen_ai.conversation.id`` baggage
entry of a remote parent; (4) none. A span in a thread is a *turn* when its
parent is missing, remote without that thread, or in another thread (or none);
any other span belongs to its parent's turn, read from the parent span itself.

`on_start` is called synchronously on the thread that starts the span. It
never blocks (no locks of its own) and never raises: an internal failure is
logged once and counted in `failures`. Spans outside threads get nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_threads.context import (
    _BLOCK_KEY,
    CONVERSATION_ID_KEY,
    TurnState,
    _ref,
    _states_get,
    bind_span,
    span_state,
)

__all__ = ["COMPAT_BACKENDS", "ThreadSpanProcessor", "span_state"]

_logger = logging.getLogger(__name__)

TURN_ID = "otel_threads.turn_id"
IS_TURN = "otel_threads.is_turn"
PREVIOUS_TURN_ID = "otel_threads.previous_turn_id"

#: Backends whose own thread keys `compat=` can also write, and those keys.
COMPAT_BACKENDS: dict[str, tuple[str, ...]] = {
    "weave": ("wandb.thread_id", "wandb.is_turn"),
    "openinference": ("session.id",),
    "langfuse": ("langfuse.session.id",),
}

# The span a context holds. `trace.get_current_span(ctx)` reads the same key but
# adds two calls and an isinstance check against an ABC, on the hot path.
try:
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover - a future API that renames it
    _SPAN_KEY = None

_get_current = context.get_current

def _set_attributes_public(span: Span, attrs: dict[str, Any]) -> None:
    span.set_attributes(attrs)


def _set_attributes_direct(span: Span, attrs: dict[str, Any]) -> None:
    """Add already-valid attributes to a span that is still being started.

    `Span.set_attributes` re-validates every value, copies the mapping and takes
    two locks: about 2.5 us for three short strings, a fifth of the cost of a
    whole span. In `on_start` the span is not yet visible to any other code and
    our values are plain str/bool that need no cleaning, so when the SDK's
    attribute container is exactly the one this was checked against (see
    `_direct_write_works`), and no limit could drop or truncate anything, the
    values go straight into it. Anything else takes the public path.
    """
    bounded = getattr(span, "_attributes", None)
    if (
        type(bounded) is BoundedAttributes
        and bounded.max_value_len is None
        and not bounded._immutable
        and (bounded.maxlen is None or len(bounded._dict) + len(attrs) <= bounded.maxlen)
    ):
        bounded._dict.update(attrs)
    else:
        span.set_attributes(attrs)


def _direct_write_works() -> bool:
    """Check, once, that the direct write gives what `set_attributes` gives."""
    try:
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer(__name__)
        probe = {"a.key": "value", "b.key": True}
        one, two = tracer.start_span("probe"), tracer.start_span("probe")
        _set_attributes_direct(one, probe)
        two.set_attributes(probe)
        one.end()
        two.end()
        return dict(one.attributes or {}) == dict(two.attributes or {}) == probe
    except Exception:
        return False


_set_attributes = _set_attributes_direct if _direct_write_works() else _set_attributes_public


class ThreadSpanProcessor(SpanProcessor):
    """Stamps ``gen_ai.conversation.id`` and ``otel_threads.*`` turn attributes.

    ``compat`` names other backends ("weave", "openinference", "langfuse") whose
    own thread keys are written too, so those backends group the same threads.
    """

    def __init__(self, compat: Iterable[str] = ()) -> None:
        if isinstance(compat, str):
            compat = (compat,)
        names = tuple(compat)
        unknown = [n for n in names if n not in COMPAT_BACKENDS]
        if unknown:
            raise ValueError(
                f"unknown compat backend(s) {unknown}; choose from {sorted(COMPAT_BACKENDS)}"
            )
        self.compat = names
        self._weave = "weave" in names
        self._session_keys = tuple(
            key for n in names if n != "weave" for key in COMPAT_BACKENDS[n]
        )
        self._failures = 0
        self._failures_lock = threading.Lock()

    @property
    def failures(self) -> int:
        """How many spans the processor failed to mark (each was logged once at most)."""
        return self._failures

    # -- attribute sets -------------------------------------------------------

    def _attrs(self, thread_id: str | None, turn_id: str | None, is_turn: bool,
               previous: str | None = None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if thread_id is not None:
            attrs[CONVERSATION_ID_KEY] = thread_id
        if turn_id is not None:
            attrs[TURN_ID] = turn_id
        if is_turn:
            attrs[IS_TURN] = True
        if previous is not None:
            attrs[PREVIOUS_TURN_ID] = previous
        if thread_id is not None:
            if self._weave:
                attrs["wandb.thread_id"] = thread_id
                attrs["wandb.is_turn"] = is_turn
            for key in self._session_keys:
                attrs[key] = thread_id
        return attrs

    def _continue_remote(self, span: Span, key: object, thread_id: str) -> None:
        """A span whose remote parent carried ``thread_id``: same turn, held elsewhere."""
        st = TurnState(key, thread_id, None, self._attrs(thread_id, None, False))
        bind_span(span, st)
        _set_attributes(span, st.child_attrs)

    # -- SpanProcessor ----------------------------------------------------------

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        # The path every span takes, threads or not, so it is kept flat and short.
        try:
            ctx = parent_context if parent_context is not None else _get_current()
            block = ctx.get(_BLOCK_KEY)
            parent = ctx.get(_SPAN_KEY) if _SPAN_KEY is not None else trace.get_current_span(ctx)
            pstate = None if parent is None else _states_get(_ref(parent))
            if block is not None:
                self._in_block(span, ctx, block, parent, pstate)
            elif pstate is not None:  # rule 2: the in-process parent's thread and turn
                bind_span(span, pstate)
                _set_attributes(span, pstate.child_attrs)
            elif (
                parent is not None
                and type(parent) is not Span  # an SDK span is never remote
                and parent.get_span_context().is_remote
            ):
                tid = baggage.get_baggage(CONVERSATION_ID_KEY, ctx)  # rule 3
                if isinstance(tid, str) and tid:
                    self._continue_remote(span, tid, tid)
        except Exception:  # never raise into user code
            self._failed()

    def _in_block(self, span: Span, ctx: context.Context, block: Any, parent: Any,
                  pstate: TurnState | None) -> None:
        """Rule 1: the span's context has an active `thread()` block."""
        key = block.key
        if key is None:  # thread(None)
            return
        if pstate is not None:
            if pstate.key == key:  # the parent's turn, decided by the parent span
                bind_span(span, pstate)
                _set_attributes(span, pstate.child_attrs)
                return
        elif (
            parent is not None
            and block.thread_id is not None
            and block.outer_baggage == block.thread_id
            and parent.get_span_context().is_remote
        ):
            # the remote caller sent this thread in baggage: its turn goes on
            self._continue_remote(span, key, block.thread_id)
            return
        # a new turn
        thread_id = block.thread_id
        turn_id = format(span.get_span_context().span_id, "016x")
        previous = block.start_turn(turn_id)
        bind_span(span, TurnState(key, thread_id, turn_id, self._attrs(thread_id, turn_id, False)))
        _set_attributes(span, self._attrs(thread_id, turn_id, True, previous))

    def _failed(self) -> None:
        with self._failures_lock:
            self._failures += 1
            first = self._failures == 1
        if first:
            _logger.exception(
                "ThreadSpanProcessor failed to mark a span; further failures are only "
                "counted (ThreadSpanProcessor.failures)"
            )

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
