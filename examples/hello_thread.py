"""Hello thread: one operation inside `thread()`; print the thread id.

    otel-threads collect &
    python examples/hello_thread.py

Expected result: one thread, whose id (a new UUIDv7) is printed first, with one turn:
the span ``handle_message`` (marked ``otel_threads.is_turn``) and its child
``call_model``, in the same turn (2 spans). No LLM call, so no transcript.
"""

from __future__ import annotations

from opentelemetry import trace

import otel_threads
from otel_threads import thread


def main() -> str:
    configured = otel_threads.configure(service_name="hello")  # OTLP to the collector
    tracer = trace.get_tracer("hello")
    with thread() as t:  # an automatic id: a UUIDv7
        print("thread id:", t.thread_id)
        with tracer.start_as_current_span("handle_message"):  # the turn
            with tracer.start_as_current_span("call_model"):  # in the same turn
                pass
        print("turn id:", t.last_turn_id)
    configured.shutdown()  # flush before the process ends
    return t.thread_id


if __name__ == "__main__":
    main()
