"""Helpers for testing code that uses otel_threads (ours and yours).

    from otel_threads.testing import capture
    with capture() as cap:
        with thread("t1"):
            with cap.tracer.start_as_current_span("turn"):
                ...
    cap.spans()            # finished spans, in end order
    cap.by_name("turn").attributes["otel_threads.is_turn"]

Ids are sequential (trace 1, 2, ...; span 1, 2, ...) so output can be compared
exactly, and each capture has its own TracerProvider: nothing global is touched.
With ``capture(clock=FixedClock())`` the times are too: the spans' instants, in order,
become 1 ms apart from a fixed start (`FixedClock`).

`otel_threads.testing.fakellm` is an OpenAI-compatible server for tests, and
`otel_threads.collector.testing` runs a collector in the test's process.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Tracer

from otel_threads.processor import ThreadSpanProcessor

__all__ = ["Capture", "FixedClock", "SequentialIdGenerator", "capture"]


class SequentialIdGenerator(IdGenerator):
    """Span ids 1, 2, 3, ... and trace ids 1, 2, 3, ... (thread-safe)."""

    def __init__(self, first_span_id: int = 1, first_trace_id: int = 1) -> None:
        self._spans = itertools.count(first_span_id)
        self._traces = itertools.count(first_trace_id)
        self._lock = threading.Lock()

    def generate_span_id(self) -> int:
        with self._lock:
            return next(self._spans)

    def generate_trace_id(self) -> int:
        with self._lock:
            return next(self._traces)


class FixedClock:
    """Times a test can compare exactly: the k-th distinct instant at which the spans
    (and their events) started or ended becomes ``start_ns + k * step_ns``. Order,
    nesting and ties are kept; only the real clock's values go (they differ per run)."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000_000) -> None:
        self.start_ns = start_ns
        self.step_ns = step_ns

    def apply(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        """``spans`` again, with their times (and their events') on this clock."""
        instants = sorted(
            {
                t
                for s in spans
                for t in (s.start_time, s.end_time, *(e.timestamp for e in s.events))
                if t is not None
            }
        )
        at = {t: self.start_ns + k * self.step_ns for k, t in enumerate(instants)}
        return [
            ReadableSpan(
                name=s.name,
                context=s.context,
                parent=s.parent,
                resource=s.resource,
                attributes=s.attributes,
                kind=s.kind,
                status=s.status,
                links=s.links,
                events=[Event(e.name, e.attributes, at[e.timestamp]) for e in s.events],
                start_time=at.get(s.start_time),
                end_time=at.get(s.end_time),  # type: ignore[arg-type]
                instrumentation_scope=s.instrumentation_scope,
            )
            for s in spans
        ]


class Capture:
    """A TracerProvider with ThreadSpanProcessor and an in-memory exporter."""

    def __init__(
        self, compat: Iterable[str] = (), first_span_id: int = 1, clock: FixedClock | None = None
    ) -> None:
        self.clock = clock
        self.provider = TracerProvider(id_generator=SequentialIdGenerator(first_span_id))
        self.processor = ThreadSpanProcessor(compat=compat, tracer_provider=self.provider)
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(self.processor)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("otel_threads.testing")

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended (their times on `clock`, if any)."""
        spans = list(self.exporter.get_finished_spans())
        return spans if self.clock is None else self.clock.apply(spans)

    def by_name(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``."""
        found = [s for s in self.spans() if s.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one finished span named {name!r}, found {len(found)}")
        return found[0]

    def thread_attributes(self) -> dict[str, dict[str, object]]:
        """{span name: its thread/turn attributes} for every finished span."""
        keys = (
            "gen_ai.conversation.id",
            "otel_threads.turn_id",
            "otel_threads.is_turn",
            "otel_threads.previous_turn_id",
            "otel_threads.thread_ended",
        )
        out: dict[str, dict[str, object]] = {}
        for span in self.spans():
            attrs = span.attributes or {}
            out[span.name] = {k: attrs[k] for k in keys if k in attrs}
        return out

    def shutdown(self) -> None:
        self.provider.shutdown()


@contextmanager
def capture(
    compat: Iterable[str] = (), first_span_id: int = 1, clock: FixedClock | None = None
) -> Iterator[Capture]:
    """A fresh `Capture`, shut down on exit."""
    cap = Capture(compat=compat, first_span_id=first_span_id, clock=clock)
    try:
        yield cap
    finally:
        cap.shutdown()
