"""Real Python GenAI libraries holding one conversation each, for tests/test_py_producers.py.

Each `run_<producer>` sets the library up as its documentation says (its own
instrumentation, exporting OTLP to the collector), holds the same two-turn support
conversation against otel_threads.testing.fakellm (turn 1: a question answered through the
get_order_status tool; turn 2: "Thanks!"), flushes and returns. Tests run each in a
subprocess of its own (`python -m py_producers NAME GRPC HTTP LLM_URL SESSION`):
instrumentations patch libraries process-wide and not all of them undo it.
"""

from __future__ import annotations

import os
import sys

SYSTEM = "You are a support bot."
ASK = "Where is order A-1042?"
THANKS = "Thanks!"


def order_status(order_id: str) -> str:
    """Look up an order"""
    return f"{order_id}: shipped"


def _sdk(grpc: str, service: str):
    """A TracerProvider and LoggerProvider exporting OTLP/gRPC, set as the globals."""
    from opentelemetry import _logs, trace
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=grpc, insecure=True))
    )
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=grpc, insecure=True))
    )
    _logs.set_logger_provider(logger_provider)
    return tracer_provider, logger_provider


def run_pydantic_ai(grpc: str, http: str, llm: str, session: str) -> None:
    """pydantic-ai: `Agent.instrument_all()`, the conversation id given to each run."""
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    tracer_provider, logger_provider = _sdk(grpc, "pydantic-ai-app")
    Agent.instrument_all()
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=llm, api_key="unused"))
    agent = Agent(model, system_prompt=SYSTEM, tools=[order_status])
    first = agent.run_sync(ASK, conversation_id=session)
    second = agent.run_sync(THANKS, message_history=first.all_messages(), conversation_id=session)
    print(f"turn 1: {first.output}\nturn 2: {second.output}")
    tracer_provider.shutdown()
    logger_provider.shutdown()


def _tool_loop(create, messages: list, tools: list) -> str:
    """Chat Completions with tools until the model answers (the OpenAI client's shape):
    ``create(messages=..., tools=...)`` returns a completion."""
    import json

    while True:
        message = create(messages=messages, tools=tools).choices[0].message
        if not message.tool_calls:
            messages.append({"role": "assistant", "content": message.content})
            return message.content
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.function.name, "arguments": c.function.arguments},
                    }
                    for c in message.tool_calls
                ],
            }
        )
        for call in message.tool_calls:
            args = json.loads(call.function.arguments)
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": order_status(args["order_id"])}
            )


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


def run_logfire(grpc: str, http: str, llm: str, session: str) -> None:
    """logfire: `configure(send_to_logfire=False)` exporting OTLP/HTTP by the standard
    variables, `instrument_openai`, the conversation id as baggage."""
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = http
    import logfire
    import openai

    logfire.configure(send_to_logfire=False, service_name="logfire-app", console=False)
    client = openai.OpenAI(base_url=llm, api_key="unused", max_retries=0)
    logfire.instrument_openai(client)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    with logfire.set_baggage(**{"gen_ai.conversation.id": session}):
        with logfire.span("turn 1"):
            first = _tool_loop(
                lambda **kw: client.chat.completions.create(model="gpt-4o-mini", **kw),
                messages,
                [TOOL],
            )
        messages.append({"role": "user", "content": THANKS})
        with logfire.span("turn 2"):
            second = (
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                .choices[0]
                .message.content
            )
    print(f"turn 1: {first}\nturn 2: {second}")
    logfire.force_flush()
    logfire.shutdown()


def run_litellm(grpc: str, http: str, llm: str, session: str) -> None:
    """LiteLLM's `otel` callback; the app's turns in `otel_threads.thread()` blocks."""
    os.environ.update(
        {
            "OTEL_EXPORTER": "otlp_grpc",
            "OTEL_ENDPOINT": grpc,
            "OTEL_SERVICE_NAME": "litellm-app",
            # its own litellm_request span under the app's span, rather than
            # its attributes written onto the app's (possibly ended) span
            "USE_OTEL_LITELLM_REQUEST_SPAN": "true",
            # no fetch of the model price list at import (offline)
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    import litellm
    from opentelemetry import trace

    from otel_threads import ThreadSpanProcessor, thread

    tracer_provider, logger_provider = _sdk(grpc, "litellm-app")
    tracer_provider.add_span_processor(ThreadSpanProcessor())
    litellm.callbacks = ["otel"]
    tracer = trace.get_tracer("litellm-app")

    def create(**kw):
        return litellm.completion(model="openai/gpt-4o-mini", api_base=llm, api_key="unused", **kw)

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    with thread(session):
        with tracer.start_as_current_span("turn 1"):
            first = _tool_loop(create, messages, [TOOL])
        messages.append({"role": "user", "content": THANKS})
        with tracer.start_as_current_span("turn 2"):
            second = create(messages=messages).choices[0].message.content
    print(f"turn 1: {first}\nturn 2: {second}")
    _flush_litellm()
    tracer_provider.shutdown()
    logger_provider.shutdown()


def _flush_litellm() -> None:
    """LiteLLM logs its calls from a background worker: let it finish, then flush the
    provider it exports with."""
    import time

    from opentelemetry import trace

    time.sleep(1.0)
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


def run_mlflow(grpc: str, http: str, llm: str, session: str) -> None:
    """MLflow tracing: `mlflow.openai.autolog()` exporting OTLP; the session id as a
    `session.id` attribute of the app's span (MLflow JSON-encodes it)."""
    os.environ.update(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{http}/v1/traces",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "mlflow-app",
        }
    )
    import mlflow
    import openai

    mlflow.openai.autolog()
    client = openai.OpenAI(base_url=llm, api_key="unused", max_retries=0)

    def create(**kw):
        return client.chat.completions.create(model="gpt-4o-mini", **kw)

    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ASK}]
    with mlflow.start_span("turn 1") as span:
        span.set_attribute("session.id", session)
        first = _tool_loop(create, messages, [TOOL])
    messages.append({"role": "user", "content": THANKS})
    with mlflow.start_span("turn 2") as span:
        span.set_attribute("session.id", session)
        second = create(messages=messages).choices[0].message.content
    print(f"turn 1: {first}\nturn 2: {second}")
    mlflow.flush_trace_async_logging() if hasattr(mlflow, "flush_trace_async_logging") else None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


def run_langchain(grpc: str, http: str, llm: str, session: str) -> None:
    """LangChain 1 / LangGraph agent with openinference-instrumentation-langchain;
    the session by `using_session`."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation import using_session
    from openinference.instrumentation.langchain import LangChainInstrumentor

    tracer_provider, logger_provider = _sdk(grpc, "langchain-app")
    LangChainInstrumentor().instrument(tracer_provider=tracer_provider)

    @tool
    def get_order_status(order_id: str) -> str:
        """Look up an order"""
        return order_status(order_id)

    model = ChatOpenAI(model="gpt-4o-mini", base_url=llm, api_key="unused", max_retries=0)
    agent = create_agent(model, tools=[get_order_status], system_prompt=SYSTEM)
    with using_session(session):
        state = agent.invoke({"messages": [{"role": "user", "content": ASK}]})
        first = state["messages"][-1].content
        state = agent.invoke(
            {"messages": [*state["messages"], {"role": "user", "content": THANKS}]}
        )
        second = state["messages"][-1].content
    print(f"turn 1: {first}\nturn 2: {second}")
    tracer_provider.shutdown()
    logger_provider.shutdown()


def run_google_adk(grpc: str, http: str, llm: str, session: str) -> None:
    """Google ADK: an LlmAgent on ADK's LiteLlm model (OpenAI-compatible, the fake),
    its session id the conversation's; spans and logs over OTLP/gRPC."""
    os.environ.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        }
    )
    import asyncio

    from google.adk.agents import LlmAgent
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    tracer_provider, logger_provider = _sdk(grpc, "adk-app")

    def get_order_status(order_id: str) -> str:
        """Look up an order"""
        return order_status(order_id)

    agent = LlmAgent(
        name="support",
        instruction=SYSTEM,
        tools=[get_order_status],
        model=LiteLlm(model="openai/gpt-4o-mini", api_base=llm, api_key="unused"),
    )
    runner = InMemoryRunner(agent, app_name="support")

    async def converse() -> list[str]:
        await runner.session_service.create_session(
            app_name="support", user_id="u", session_id=session
        )
        answers = []
        for text in (ASK, THANKS):
            final = ""
            async for event in runner.run_async(
                user_id="u",
                session_id=session,
                new_message=types.Content(role="user", parts=[types.Part(text=text)]),
            ):
                if event.is_final_response() and event.content and event.content.parts:
                    final = "".join(p.text or "" for p in event.content.parts)
            answers.append(final)
        return answers

    first, second = asyncio.run(converse())
    print(f"turn 1: {first}\nturn 2: {second}")
    tracer_provider.shutdown()
    logger_provider.shutdown()


run_google_adk_2 = run_google_adk  # the same app on ADK 2.x (.venv-adk2): content as logs


def main() -> None:
    name, grpc, http, llm, session = sys.argv[1:6]
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    globals()[f"run_{name.replace('-', '_')}"](grpc, http, llm, session)


if __name__ == "__main__":
    main()
