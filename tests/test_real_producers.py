"""Real, unmodified instrumentation packages, end to end: messages and transcript.

Each test starts otel_threads.testing.fakellm and a collector on 127.0.0.1:0, instruments the
official `openai` client with one producer (its own TracerProvider with
ThreadSpanProcessor, and LoggerProvider, both exporting through the SDK's OTLP/gRPC
exporters), holds a two-turn conversation in `thread("support-42")` blocks (a tool loop,
then a streamed follow-up), uninstruments, and reads the views row by row.

OpenLLMetry runs in a subprocess: its uninstrument() does not unwrap (0.62.4 passes
unwrap() a module path with a dotted attribute, "Completions.create", which it does not
resolve), so in this process its wrapper would stay under every later test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ANY = ("127.0.0.1", 0)
THREAD = "support-42"
SYSTEM = "You are a support bot."
ASK = "Where is order A-1042?"
RESULT = "A-1042: shipped"
ANSWER = f"Here is what I found: {RESULT}"
CALL = '[{"id":"call_1","name":"get_order_status","arguments":{"order_id":"A-1042"}}]'
TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Look up an order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}
CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"


def order_status(arguments: str) -> str:
    return f"{json.loads(arguments)['order_id']}: shipped"


def converse(client, tracer) -> None:
    """Turn 1: a tool loop (two calls). Turn 2, a later request: a streamed answer."""
    from otel_threads import thread

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    with thread(THREAD), tracer.start_as_current_span("turn 1"):
        reply = (
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[TOOL])
            .choices[0]
            .message
        )
        call = reply.tool_calls[0]
        messages.append(reply.model_dump(exclude_none=True))
        messages.append(
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": order_status(call.function.arguments),
            }
        )
        reply = (
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[TOOL])
            .choices[0]
            .message
        )
        messages.append({"role": "assistant", "content": reply.content})
    with thread(THREAD), tracer.start_as_current_span("turn 2"):
        messages.append({"role": "user", "content": "Thanks!"})
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        assert (
            "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            == "You said: Thanks!"
        )


def run(producer: str, grpc_endpoint: str, base_url: str) -> None:
    """Instrument, converse, uninstrument, flush: the same in-process and in a subprocess."""
    import openai
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from otel_threads import ThreadSpanProcessor
    from otel_threads.testing import SequentialIdGenerator

    if producer == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif producer == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor

    resource = Resource.create({"service.name": "support-app"})
    tracer_provider = TracerProvider(resource=resource, id_generator=SequentialIdGenerator())
    tracer_provider.add_span_processor(ThreadSpanProcessor())
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=grpc_endpoint, insecure=True))
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=grpc_endpoint, insecure=True))
    )
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    try:
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        converse(client, tracer_provider.get_tracer("support-app"))
        client.close()
    finally:
        instrumentor.uninstrument()
        tracer_provider.shutdown()
        logger_provider.shutdown()


@pytest.fixture
def collector(tmp_path):
    from otel_threads.collector.testing import running

    with running(tmp_path / "producers.duckdb", grpc=ANY, http=ANY, api=ANY) as c:
        yield c


@pytest.fixture
def llm():
    from otel_threads.testing.fakellm import FakeLLM

    with FakeLLM() as server:
        yield server


def rows(collector, sql: str) -> list[tuple]:
    collector.store.sync(30)  # the derived views follow the commits
    with collector.store.cursor() as cur:
        return cur.execute(sql).fetchall()


def assert_conversation(
    collector, convention: str, status: tuple[str, str, str] = ("UNSET",) * 3
) -> None:
    t1, t2 = f"{1:032x}", f"{2:032x}"
    turn1, call1, call2, turn2, call3 = (f"{n:016x}" for n in range(1, 6))

    def msg(
        trace,
        turn,
        span,
        direction,
        position,
        role,
        content=None,
        tool_calls=None,
        tool_call_id=None,
        finish_reason=None,
    ):
        return (
            THREAD,
            turn,
            trace,
            span,
            direction,
            position,
            role,
            content,
            tool_calls,
            tool_call_id,
            finish_reason,
            convention,
            span,
            None,
        )

    history = [
        ("system", SYSTEM),
        ("user", ASK),
        ("assistant", None, CALL),
        ("tool", RESULT, None, "call_1"),
        ("assistant", ANSWER),
        ("user", "Thanks!"),
    ]

    def inputs(trace, turn, span, n):
        return [msg(trace, turn, span, "input", i, *m) for i, m in enumerate(history[:n])]

    assert rows(
        collector, "SELECT * FROM messages ORDER BY trace_id, span_id, direction, position"
    ) == [
        *inputs(t1, turn1, call1, 2),
        msg(t1, turn1, call1, "output", 0, "assistant", None, CALL, None, "tool_call"),
        *inputs(t1, turn1, call2, 4),
        msg(t1, turn1, call2, "output", 0, "assistant", ANSWER, None, None, "stop"),
        *inputs(t2, turn2, call3, 6),
        msg(t2, turn2, call3, "output", 0, "assistant", "You said: Thanks!", None, None, "stop"),
    ]
    assert rows(collector, "SELECT * FROM transcript ORDER BY seq") == [
        (THREAD, 1, turn1, "system", SYSTEM, None, None, None, t1, call1, "input", 0),
        (THREAD, 2, turn1, "user", ASK, None, None, None, t1, call1, "input", 1),
        (THREAD, 3, turn1, "assistant", None, CALL, None, "tool_call", t1, call1, "output", 0),
        (THREAD, 4, turn1, "tool", RESULT, None, "call_1", None, t1, call2, "input", 3),
        (THREAD, 5, turn1, "assistant", ANSWER, None, None, "stop", t1, call2, "output", 0),
        (THREAD, 6, turn2, "user", "Thanks!", None, None, None, t2, call3, "input", 5),
        (
            THREAD,
            7,
            turn2,
            "assistant",
            "You said: Thanks!",
            None,
            None,
            "stop",
            t2,
            call3,
            "output",
            0,
        ),
    ]
    # the fake server counts words: 9 / 11 / 19 prompt tokens, 2 / 7 / 3 completion tokens
    assert rows(
        collector,
        "SELECT turn_id, span_id, operation, provider, request_model, "
        "response_model, input_tokens, output_tokens, finish_reasons, "
        "status_code, convention FROM llm_calls ORDER BY start_time",
    ) == [
        (
            turn,
            span,
            "chat",
            "openai",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            i,
            o,
            [f],
            code,
            convention,
        )
        for turn, span, i, o, f, code in [
            (turn1, call1, 9, 2, "tool_call", status[0]),
            (turn1, call2, 11, 7, "stop", status[1]),
            (turn2, call3, 19, 3, "stop", status[2]),
        ]
    ]


@pytest.mark.parametrize(
    ("mode", "convention"), [("SPAN_ONLY", "semconv-1.37"), ("EVENT_ONLY", "semconv-1.37-event")]
)
def test_openai_v2_with_util_genai(collector, llm, monkeypatch, mode, convention):
    monkeypatch.setenv(OPT_IN_ENV, "gen_ai_latest_experimental")
    monkeypatch.setenv(CONTENT_ENV, mode)
    run("openai-v2", collector.endpoints.grpc, llm.base_url)
    kinds = rows(collector, "SELECT count(*), count(DISTINCT event_name) FROM logs")
    assert kinds == ([(0, 0)] if mode == "SPAN_ONLY" else [(3, 1)])
    assert_conversation(collector, convention)


def test_openinference(collector, llm):
    run("openinference", collector.endpoints.grpc, llm.base_url)
    assert_conversation(collector, "openinference", status=("OK", "OK", "OK"))


def test_openllmetry_in_a_subprocess(collector, llm):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))}
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "openllmetry",
            collector.endpoints.grpc,
            llm.base_url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # OpenLLMetry sets status OK on the streamed call's span only
    assert_conversation(collector, "openllmetry-json", status=("UNSET", "UNSET", "OK"))


def test_fakellm_scripted_replies_streams_and_errors():
    import urllib.error
    import urllib.request

    import openai

    from otel_threads.testing.fakellm import FakeLLM

    scripted = [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}, "Scripted."]
    with FakeLLM(scripted) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        ask = [{"role": "user", "content": "hi"}]
        first = client.chat.completions.create(model="gpt-4o", messages=ask)
        assert (first.model, first.choices[0].finish_reason) == ("gpt-4o-2024-08-06", "tool_calls")
        call = first.choices[0].message.tool_calls[0]
        assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
            "call_1",
            "lookup",
            {"q": "x"},
        )
        chunks = list(client.chat.completions.create(model="m", messages=ask, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Scripted."
        assert chunks[-1].usage is None and chunks[-1].choices[0].finish_reason == "stop"
        # scripts used up: the rules answer, and a stream ends with a usage chunk on request
        chunks = list(
            client.chat.completions.create(
                model="m", messages=ask, stream=True, stream_options={"include_usage": True}
            )
        )
        assert (
            "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: hi"
        )
        assert (
            chunks[-1].choices,
            chunks[-1].usage.prompt_tokens,
            chunks[-1].usage.completion_tokens,
        ) == ([], 1, 3)
        tool_stream = list(
            client.chat.completions.create(model="m", messages=ask, tools=[TOOL], stream=True)
        )
        deltas = [
            c.choices[0].delta.tool_calls
            for c in tool_stream
            if c.choices and c.choices[0].delta.tool_calls
        ]
        assert "".join(d[0].function.arguments for d in deltas) == '{"order_id": "A-1"}'
        assert [r["model"] for r in server.requests] == ["gpt-4o", "m", "m", "m"]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages="not a list")
        req = urllib.request.Request(
            server.base_url + "/embeddings",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(req, timeout=5)
        assert missing.value.code == 404
        missing.value.close()
    server.stop()  # idempotent


if __name__ == "__main__":  # python tests/test_real_producers.py PRODUCER GRPC BASE_URL
    run(*sys.argv[1:4])
