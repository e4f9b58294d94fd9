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

Only the public API of the OpenTelemetry SDK is used: the parent's `SpanContext`
is `span.parent`, the parent span is `trace.get_current_span(parent_context)`, and
attributes go in with `Span.set_attributes` (so the SDK's attribute limits hold),
unless the opt-in fast path is on (``fast_path=True``; `otel_threads.sdk_fast_path`).
Which thread and turn each span is in is recorded in `otel_threads.context`
(`bind_span`, `span_state`), which `current_turn_id()` reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_threads import env
from otel_threads.context import (
    _BLOCK_KEY,
    CONVERSATION_ID_KEY,
    THREAD_ENDED_KEY,
    TurnState,
    _ref,
    _states_data,
    _states_get,
    bind_span,
    pending_ends,
    span_state,
    take_pending_end,
)
from otel_threads.counted import Counted

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

#: Set to 1 to opt processors made without ``fast_path=`` in to the fast path.
FAST_PATH_ENV = env.FAST_PATH.name

_get_current = context.get_current
_get_current_span = trace.get_current_span


def _set_attributes(span: Span, attrs: dict[str, Any]) -> None:
    span.set_attributes(attrs)


class ThreadSpanProcessor(SpanProcessor):
    """Stamps ``gen_ai.conversation.id`` and ``otel_threads.*`` turn attributes.

    ``compat`` names other backends ("weave", "openinference", "langfuse") whose
    own thread keys are written too, so those backends group the same threads.
    ``fast_path=True`` (or ``OTEL_THREADS_FAST_PATH=1`` when ``fast_path`` is not
    given) opts in to writing attributes past `Span.set_attributes`, through SDK
    internals: see `otel_threads.sdk_fast_path`.
    ``tracer_provider``: the provider this processor is added to, through which
    ``thread(..., end=True)`` starts its end marker span in a turn this processor
    started (default: the global tracer provider, `trace.get_tracer_provider`, when
    the marker is started). A span processor is not told its provider, hence the
    argument; `otel_threads.configure` passes it.

    A span of a thread whose end is waiting (`ThreadContext.end`) gets
    ``otel_threads.thread_ended = true`` as it starts: the first one only.
    """

    def __init__(
        self,
        compat: Iterable[str] = (),
        *,
        fast_path: bool | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
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
        self._session_keys = tuple(key for n in names if n != "weave" for key in COMPAT_BACKENDS[n])
        self._failures = Counted(_logger)
        self._set_attributes = _set_attributes
        self._tracer_provider = tracer_provider
        #: Whether this processor writes attributes through the opt-in fast path
        #: (`otel_threads.sdk_fast_path`): asked for and working with this SDK.
        self.fast_path = False
        if fast_path is None:
            fast_path = env.enabled(env.FAST_PATH)
        if fast_path:
            from otel_threads import sdk_fast_path

            self.fast_path = sdk_fast_path.available()
            if self.fast_path:
                self._set_attributes = sdk_fast_path.set_attributes

    @property
    def failures(self) -> int:
        """How many spans the processor failed to mark (each was logged once at most)."""
        return self._failures.count

    def marker_tracer(self) -> trace.Tracer:
        """The tracer of the end marker span (``thread(..., end=True)``)."""
        provider = self._tracer_provider or trace.get_tracer_provider()
        return provider.get_tracer("otel_threads")

    # -- attribute sets -------------------------------------------------------

    def _attrs(
        self, thread_id: str | None, turn_id: str | None, is_turn: bool, previous: str | None = None
    ) -> dict[str, Any]:
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
        self._set_attributes(span, st.child_attrs)

    # -- SpanProcessor ----------------------------------------------------------

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        # The path every span takes, threads or not, so it is kept flat and short:
        # the parent's SpanContext (`span.parent`, None for a root span) settles most
        # cases before the parent span itself is looked up in the context.
        try:
            ctx = parent_context if parent_context is not None else _get_current()
            block = ctx.get(_BLOCK_KEY)
            parent = span.parent
            if block is not None:
                self._in_block(span, ctx, block, parent)
            elif parent is None:  # a root span outside any block: no rule applies
                return
            elif parent.is_remote:  # rule 3: the thread a remote caller sent in baggage
                tid = baggage.get_baggage(CONVERSATION_ID_KEY, ctx)
                if isinstance(tid, str) and tid:
                    self._continue_remote(span, tid, tid)
            elif _states_data:  # rule 2: the in-process parent's thread and turn
                pstate = _states_get(_ref(_get_current_span(ctx)))
                if pstate is not None:
                    bind_span(span, pstate)
                    self._set_attributes(span, pstate.child_attrs)
            if pending_ends:  # an end waits for the next span of its thread
                self._mark_end(span)
        except Exception:  # never raise into user code
            self._failed()

    def _mark_end(self, span: Span) -> None:
        st = _states_get(_ref(span))
        if st is None:
            return
        handle = take_pending_end(st.key)
        if handle is not None:
            self._set_attributes(span, {THREAD_ENDED_KEY: True})
            handle._ended_turn = st.turn_id or ""

    def _in_block(
        self, span: Span, ctx: context.Context, block: Any, parent: trace.SpanContext | None
    ) -> None:
        """Rule 1: the span's context has an active `thread()` block."""
        key = block.key
        if key is None:  # thread(None)
            return
        if parent is None:
            pass
        elif parent.is_remote:
            thread_id = block.thread_id
            if thread_id is not None and block.outer_baggage == thread_id:
                # the remote caller sent this thread in baggage: its turn goes on
                self._continue_remote(span, key, thread_id)
                return
        elif _states_data:
            pstate = _states_get(_ref(_get_current_span(ctx)))
            if pstate is not None and pstate.key == key:
                # the parent's turn, decided by the parent span
                bind_span(span, pstate)
                self._set_attributes(span, pstate.child_attrs)
                return
        # a new turn
        thread_id = block.thread_id
        turn_id = format(span.get_span_context().span_id, "016x")
        previous = block.start_turn(turn_id, span, self)
        bind_span(span, TurnState(key, thread_id, turn_id, self._attrs(thread_id, turn_id, False)))
        self._set_attributes(span, self._attrs(thread_id, turn_id, True, previous))

    def _failed(self) -> None:
        self._failures(
            "ThreadSpanProcessor failed to mark a span; further failures are only "
            "counted (ThreadSpanProcessor.failures)",
            exc_info=True,
        )

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
