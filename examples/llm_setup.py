"""What the examples share: OpenTelemetry with threads, the official OpenAI
instrumentation, and the official `openai` client talking to the bundled fake
OpenAI-compatible server (otel_threads.testing.fakellm), so everything runs offline and
the spans are the real ones.

Spans and GenAI events go over OTLP to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default: a
collector on this machine, ``otel-threads collect``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

# Message content goes on the spans (the instrumentation's default records none).
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")

import openai
from opentelemetry import trace
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import otel_threads
from otel_threads.testing.fakellm import FakeLLM

MODEL = "gpt-4o-mini"


@contextlib.contextmanager
def llm_app(
    service_name: str, replies: Iterable[str | dict] = ()
) -> Iterator[tuple[openai.OpenAI, trace.Tracer]]:
    """An instrumented OpenAI client and a tracer; everything is flushed on exit.

    ``replies`` scripts the fake model's answers in order (then it echoes, and calls
    the first tool offered when the user speaks: see otel_threads.testing.fakellm).
    """
    configured = otel_threads.configure(service_name=service_name)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument()
    try:
        with FakeLLM(replies) as llm:
            client = openai.OpenAI(base_url=llm.base_url, api_key="fake", max_retries=0)
            try:
                yield client, trace.get_tracer(service_name)
            finally:
                client.close()
    finally:
        instrumentor.uninstrument()
        configured.shutdown()  # flush: every span is exported before the process ends
