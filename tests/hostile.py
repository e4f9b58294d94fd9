"""OTLP requests built to break the views: every attribute key the SQL reads, given values
of every odd shape, on LLM spans of every convention, in span events and log records.

The keys come from the SQL itself (otel_threads/sql/*.sql), so a key a view starts to
read is covered without editing this file.
"""

from __future__ import annotations

import json
import re
from importlib import resources

from anyvalue import set_value
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_threads.otlp.values import THREAD_ID_KEYS

T0 = 1_700_000_000_000_000_000

#: The keys each LLM-span predicate reads (genai_llm_spans.sql), with the value that
#: makes a span that convention's call; given per convention, never as a hostile value.
CONVENTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "langsmith": ("llm", {"langsmith.span.kind": "llm"}),
    "openinference": ("ChatCompletion", {"openinference.span.kind": "LLM"}),
    "mlflow": ("Completions", {"mlflow.spanType": '"CHAT_MODEL"'}),
    "vercel-ai-legacy": (
        "ai.generateText.doGenerate",
        {"ai.operationId": "ai.generateText.doGenerate"},
    ),
    "langfuse": ("generation", {"langfuse.observation.type": "generation"}),
    "google-adk": ("call_llm", {}),
    "pydantic-ai-events": ("chat gpt", {}),
    "logfire-v1": ("Chat Completion", {}),
    "openllmetry-flat": ("openai.chat", {"llm.request.type": "chat"}),
    "openllmetry-json": ("openai.chat", {"llm.request.type": "chat"}),
    "semconv-1.37": (
        "chat gpt",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"},
    ),
    "semconv-1.28-events": ("chat gpt", {"gen_ai.operation.name": "chat"}),
    "semconv-1.27-span-events": (
        "chat gpt",
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt"},
    ),
}
PREDICATE_KEYS = {
    "langsmith.span.kind",
    "openinference.span.kind",
    "mlflow.spanType",
    "ai.operationId",
    "langfuse.observation.type",
    "llm.request.type",
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.is_streaming",
    "llm.is_streaming",
    "traceloop.span.kind",
    "traceloop.entity.name",
    "otel_threads.turn_id",
    "otel_threads.is_turn",
    "otel_threads.previous_turn_id",
    "wandb.is_turn",
}

#: Flat, indexed keys with odd indices (OpenLLMetry <= 0.54, OpenInference, LiteLLM).
FLAT_KEYS = [
    "gen_ai.prompt.0.role",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.0.tool_call_id",
    "gen_ai.prompt.99999999999.content",
    "gen_ai.prompt.0.tool_calls.99999999999.name",
    "gen_ai.completion.0.function_call.name",
    "gen_ai.completion.0.function_call.arguments",
    "gen_ai.completion.0.tool_calls.0.arguments",
    "gen_ai.completion.0.finish_reason",
    "gen_ai.prompt.0.user",
    "llm.prompts.0.content",
    "llm.completions.0.content",
    "llm.input_messages.0.message.role",
    "llm.input_messages.0.message.contents.99999999999.message_content.text",
    "llm.input_messages.0.message.contents.0.message_content.type",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
    "llm.output_messages.0.message.content",
]

#: Values of every shape a producer can send: ("kind", python value).
HOSTILE: list[tuple[str, object]] = [
    ("s", ""),
    ("s", "{"),
    ("s", "["),
    ("s", '{"a":'),
    ("s", "null"),
    ("s", '"x"'),
    ("s", "123"),
    ("s", "1e999"),
    ("s", "-1"),
    ("s", "NaN"),
    ("s", "99999999999999999999999"),
    ("s", '[1,"x",null,true,{"role":7,"parts":"no"}]'),
    ("s", '[{"role":"user","parts":[{"type":"text","content":{"x":[1]}},{"type":7},5]}]'),
    (
        "s",
        '[{"role":{},"content":[1,{"type":5},{"type":"text","text":{}}],"tool_calls":"x",'
        '"parts":{"type":"text"}}]',
    ),
    (
        "s",
        '{"messages":5,"message":[],"model":{},"usage":"x","choices":"y","contents":7,'
        '"candidates":[1],"input_tokens":"many","output_tokens":[]}',
    ),
    (
        "s",
        '{"messages":[{"role":null,"content":null,"tool_calls":[{"function":"f"},1]}],'
        '"output":[{"content":[5]}],"usage":{"input_tokens":"x","prompt_tokens":1e999}}',
    ),
    ("s", '"\\"abc\\""'),
    ("s", "\u2028\ud7ff\x7f"),
    ("i", 2**63 - 1),
    ("i", -(2**63)),
    ("i", 0),
    ("d", float("nan")),
    ("d", float("inf")),
    ("d", -0.0),
    ("d", 1e308),
    ("b", True),
    ("y", b"\x00\xff"),
    ("n", None),
    ("a", [1, "a", True, None, [2.5]]),
    ("a", []),
    (
        "k",
        (
            "kv",
            [("role", ("kv", [("x", 1)])), ("parts", [1, 2]), ("content", None), ("messages", "m")],
        ),
    ),
    (
        "a",
        [
            (
                "kv",
                [
                    ("role", 5),
                    (
                        "parts",
                        [("kv", [("type", "tool_call"), ("arguments", [1]), ("id", ("kv", []))])],
                    ),
                ],
            )
        ],
    ),
]


def any_value(v: object) -> AnyValue:
    out = AnyValue()
    set_value(out, v)
    return out


def _json_array(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def sql_keys() -> list[str]:
    """Every attribute-like key the view SQL names ('a.b' or "a.b", dotted)."""
    text = "\n".join(
        e.read_text()
        for e in resources.files("otel_threads").joinpath("sql").iterdir()
        if e.name.endswith(".sql")
    )
    text = re.sub(r"--[^\n]*", "", text)
    keys = set(re.findall(r"""['"]([A-Za-z_][\w-]*(?:\.[\w-]+)+)['"]""", text))
    keys |= {"events", "request_data", "response_data", "all_messages_events"}
    skip = PREDICATE_KEYS | set(THREAD_ID_KEYS)  # a thread id of any value is just an id
    return sorted(k for k in keys if k not in skip and not k.startswith("$."))


def hostile_requests(
    trace_base: int, thread_prefix: str
) -> tuple[ExportTraceServiceRequest, ExportLogsServiceRequest, list[str]]:
    """One trace per (convention, hostile value): an LLM span carrying the value in every
    key the views read and in span events, under a turn of its own thread, plus log
    records of the GenAI events on it. Returns the requests and the thread ids."""
    traces, logs = ExportTraceServiceRequest(), ExportLogsServiceRequest()
    spans = traces.resource_spans.add()
    spans.resource.attributes.add(key="service.name", value=any_value("hostile"))
    scope = spans.scope_spans.add()
    records = logs.resource_logs.add().scope_logs.add()
    keys = [*sql_keys(), *FLAT_KEYS]
    threads = []
    n = trace_base
    for convention, (name, marks) in CONVENTIONS.items():
        for kind, value in HOSTILE:
            n += 1
            thread = f"{thread_prefix}{convention}-{n}"
            threads.append(thread)
            trace_id = n.to_bytes(16, "big")
            root, llm = (2 * n).to_bytes(8, "big"), (2 * n + 1).to_bytes(8, "big")
            start = T0 + n * 10**9
            turn = Span(
                trace_id=trace_id,
                span_id=root,
                name="turn",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=start + 10**8,
            )
            turn.attributes.add(key="gen_ai.conversation.id", value=any_value(thread))
            call = Span(
                trace_id=trace_id,
                span_id=llm,
                parent_span_id=root,
                name=name,
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start + 1,
                end_time_unix_nano=start + 10**7,
            )
            attrs = {k: value for k in keys}
            # the keys that make a span these conventions' call hold the odd value inside
            if convention == "logfire-v1":
                attrs["request_data"] = (
                    '{"messages": ' + (value if kind == "s" and _json_array(value) else "[5]") + "}"
                )
            if convention == "pydantic-ai-events" and kind != "s":
                attrs["events"] = "[]"
            if convention == "openllmetry-json":
                attrs["gen_ai.input.messages"] = value if kind == "s" else "[]"
            attrs.update(marks)
            for k, v in attrs.items():
                call.attributes.add(key=k, value=any_value(v))
            for event in (
                "gen_ai.content.prompt",
                "gen_ai.content.completion",
                "gen_ai.client.inference.operation.details",
                "gen_ai.choice",
            ):
                e = call.events.add(name=event, time_unix_nano=start + 2)
                for k in (
                    "gen_ai.prompt",
                    "gen_ai.completion",
                    "gen_ai.input.messages",
                    "gen_ai.output.messages",
                    "body",
                    "index",
                    "message",
                ):
                    e.attributes.add(key=k, value=any_value(value))
            scope.spans.extend([turn, call])
            for event in (
                "gen_ai.user.message",
                "gen_ai.choice",
                "gen_ai.tool.message",
                "gen_ai.assistant.message",
                "gen_ai.client.inference.operation.details",
            ):
                rec = LogRecord(
                    trace_id=trace_id,
                    span_id=llm,
                    event_name=event,
                    observed_time_unix_nano=start + 3,
                    body=any_value(value),
                )
                for k in (
                    "gen_ai.input.messages",
                    "gen_ai.output.messages",
                    "event.name",
                    "gen_ai.system",
                    "gen_ai.system_instructions",
                ):
                    rec.attributes.add(key=k, value=any_value(value))
                records.log_records.append(rec)
    return traces, logs, threads
