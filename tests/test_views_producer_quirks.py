"""Where real producers put things the views did not read before (CONTRACT.md section 2,
GENAI_CONVENTIONS.md "Observed in 2026-12"): MLflow's JSON-encoded session id and its
provider given only as a message format, LiteLLM's tool call kept only in flat keys, the
Vercel AI SDK v7 runtime context. Spans from a real SDK through a real collector."""

from __future__ import annotations

import json

import pytest
from stored_app import App

from otel_threads.collector.testing import running, sql

ANY = ("127.0.0.1", 0)
ASK = "Where is order A-1042?"


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "q.duckdb", grpc=ANY, http=None, api=None) as c:
        yield c


def test_mlflow_session_id_is_decoded_and_its_provider_is_the_message_format(collector):
    app = App(marks=False)
    with app.tracer.start_as_current_span(
        "Completions",
        attributes={
            "mlflow.spanType": '"CHAT_MODEL"',
            "mlflow.message.format": '"openai"',
            "session.id": '"mlflow-session-1"',
            "mlflow.spanInputs": json.dumps(
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ASK}]}
            ),
            "mlflow.spanOutputs": json.dumps(
                {
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "Shipped."},
                        }
                    ],
                }
            ),
            "mlflow.chat.tokenUsage": json.dumps({"input_tokens": 5, "output_tokens": 1}),
        },
    ):
        pass
    app.send(collector)
    assert sql(
        collector,
        "SELECT thread_id, provider, request_model, input_tokens, output_tokens FROM llm_calls",
    ) == [("mlflow-session-1", "openai", "gpt-4o-mini", 5, 1)]
    assert sql(collector, "SELECT role, content FROM transcript ORDER BY seq") == [
        ("user", ASK),
        ("assistant", "Shipped."),
    ]


def test_litellm_tool_call_only_in_flat_keys_is_read(collector):
    from otel_threads import thread

    app = App()
    with thread("lite"), app.tracer.start_as_current_span("turn"):
        with app.tracer.start_as_current_span(
            "litellm_request",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": ASK}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [], "finish_reason": "tool_call"}]
                ),
                "gen_ai.completion.0.function_call.name": "get_order_status",
                "gen_ai.completion.0.function_call.arguments": '{"order_id": "A-1042"}',
                "gen_ai.completion.0.finish_reason": "tool_calls",
            },
        ):
            pass
    app.send(collector)
    assert sql(
        collector,
        "SELECT direction, role, content, tool_calls::VARCHAR, finish_reason "
        "FROM messages ORDER BY direction, position",
    ) == [
        ("input", "user", ASK, None, None),
        (
            "output",
            "assistant",
            None,
            '[{"id":null,"name":"get_order_status","arguments":{"order_id":"A-1042"}}]',
            "tool_call",
        ),
    ]


def test_vercel_ai_v7_runtime_context_names_the_thread(collector):
    app = App(marks=False)
    for key, value in (("sessionId", "v7-s"), ("conversationId", "v7-c"), ("threadId", "v7-t")):
        with app.tracer.start_as_current_span(
            "invoke_agent gpt-4o-mini", attributes={f"ai.settings.context.{key}": value}
        ):
            with app.tracer.start_as_current_span("chat gpt-4o-mini"):
                pass
    app.send(collector)
    assert sql(
        collector, "SELECT thread_id, turn_count, span_count FROM threads ORDER BY thread_id"
    ) == [("v7-c", 1, 2), ("v7-s", 1, 2), ("v7-t", 1, 2)]
