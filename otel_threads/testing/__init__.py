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
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Tracer

from otel_threads.processor import ThreadSpanProcessor

__all__ = ["Capture", "SequentialIdGenerator", "capture"]


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


class Capture:
    """A TracerProvider with ThreadSpanProcessor and an in-memory exporter."""

    def __init__(self, compat: Iterable[str] = (), first_span_id: int = 1) -> None:
        self.provider = TracerProvider(id_generator=SequentialIdGenerator(first_span_id))
        self.processor = ThreadSpanProcessor(compat=compat)
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(self.processor)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("otel_threads.testing")

    def spans(self) -> list[ReadableSpan]:
        """Finished spans, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def by_name(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``."""
        found = [s for s in self.spans() if s.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one finished span named {name!r}, found {len(found)}")
        return found[0]

    def thread_attributes(self) -> dict[str, dict[str, object]]:
        """{span name: its thread/turn attributes} for every finished span."""
        keys = ("gen_ai.conversation.id", "otel_threads.turn_id", "otel_threads.is_turn",
                "otel_threads.previous_turn_id")
        out: dict[str, dict[str, object]] = {}
        for span in self.spans():
            attrs = span.attributes or {}
            out[span.name] = {k: attrs[k] for k in keys if k in attrs}
        return out

    def shutdown(self) -> None:
        self.provider.shutdown()


@contextmanager
def capture(compat: Iterable[str] = (), first_span_id: int = 1) -> Iterator[Capture]:
    """A fresh `Capture`, shut down on exit."""
    cap = Capture(compat=compat, first_span_id=first_span_id)
    try:
        yield cap
    finally:
        cap.shutdown()
