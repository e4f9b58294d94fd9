"""Hello thread: one operation inside `thread()`; print the thread id and its spans.

    python examples/hello_thread.py

Expected result: one thread whose id is printed first; one turn ("handle_message",
marked otel_threads.is_turn=true) with one child ("call_model") in the same turn.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_threads import ThreadSpanProcessor, thread


def main() -> dict[str, dict[str, object]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(ThreadSpanProcessor())  # before the exporting processor
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("hello")

    with thread() as t:  # an auto id: a UUIDv7
        print("thread id:", t.thread_id)
        with tracer.start_as_current_span("handle_message"):  # the turn
            with tracer.start_as_current_span("call_model"):  # in the same turn
                pass
    provider.shutdown()

    spans = {}
    for span in exporter.get_finished_spans():
        attrs = {k: v for k, v in (span.attributes or {}).items()
                 if k.startswith(("gen_ai.", "otel_threads."))}
        spans[span.name] = attrs
        print(f"  {span.name:<16} {attrs}")
    return spans


if __name__ == "__main__":
    main()
