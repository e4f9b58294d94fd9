"""Real Python GenAI libraries, unmodified, end to end: pydantic-ai, LangChain/LangGraph
with OpenInference, logfire, MLflow tracing, LiteLLM and Google ADK (tests/py_producers.py
runs each
in a process of its own, against otel_threads.testing.fakellm, exporting with the library's
own exporter); then all of them and the JavaScript ones into one store, as many apps
share one collector, and every thread read again.

Each holds the same conversation: turn 1 asks where an order is and the model calls
the order tool; turn 2 says thanks. Agents (pydantic-ai, LangChain) offer the tool in
turn 2 too, and the fake model calls it again: a second tool loop (so does Google ADK).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_js_producers import RUNS as JS_RUNS
from test_js_producers import assert_thread as assert_js_thread
from test_js_producers import converse as converse_js
from test_js_producers import rows

from otel_threads.collector import Collector
from otel_threads.collector.testing import running

TESTS = Path(__file__).parent
ANY = ("127.0.0.1", 0)
SYSTEM = "You are a support bot."
ASK = "Where is order A-1042?"
THANKS = "Thanks!"
#: producer -> (service name, convention, the tool's name, an agent: a 2nd tool loop)
PRODUCERS = {
    "pydantic-ai": ("pydantic-ai-app", "semconv-1.37", "order_status", True),
    "langchain": ("langchain-app", "openinference", "get_order_status", True),
    "logfire": ("logfire-app", "semconv-1.37", "get_order_status", False),
    "mlflow": ("mlflow-app", "mlflow", "get_order_status", False),
    "litellm": ("litellm-app", "openllmetry-json", "get_order_status", False),
    "google-adk": ("adk-app", "google-adk", "get_order_status", True),
    "google-adk-2": ("adk-app", "semconv-1.37-event", "get_order_status", True),
}
#: ADK 2.x cannot share this environment (it caps the OpenTelemetry SDK at 1.44): it
#: runs from .venv-adk2 (tests/requirements-adk2.txt, made by .ci/run)
ADK2_PYTHON = TESTS.parent / ".venv-adk2" / "bin" / "python"
#: Google ADK (through its LiteLlm model) says what it sends as it is: 1.x its own name
#: as the system, 2.x the provider; LiteLLM's model string, no response model; it adds
#: to the instruction, and wraps a tool's result in {"result": ...} (which the fake
#: model echoes). 2.x sends the messages as gen_ai.client.inference.operation.details
#: log records.
ADK_SYSTEM = f'{SYSTEM}\n\nYou are an agent. Your internal name is "support".'
ADK_CALL = {
    "google-adk": ("generate_content", "gcp.vertex.agent", "openai/gpt-4o-mini", None),
    "google-adk-2": ("generate_content", "openai", "openai/gpt-4o-mini", None),
}
OPENAI_CALL = ("chat", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18")


def python_for(producer: str) -> str:
    if producer != "google-adk-2":
        return sys.executable
    if ADK2_PYTHON.exists():
        return str(ADK2_PYTHON)
    reason = "ADK 2.x runs from .venv-adk2 (pip install -r tests/requirements-adk2.txt)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run makes it")
    pytest.skip(reason)


def run(producer: str, c: Collector, llm_url: str, session: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))}
    out = subprocess.run(
        [
            python_for(producer),
            "-m",
            "py_producers",
            producer,
            c.endpoints.grpc,
            c.endpoints.http,
            llm_url,
            session,
        ],
        cwd=TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    first = out.stdout.splitlines()[-2]
    assert first.startswith("turn 1: Here is what I found: ") and "A-1042" in first, out.stdout


def call(tool: str, call_id: str | None, order: str) -> str:
    return json.dumps(
        [{"id": call_id, "name": tool, "arguments": {"order_id": order}}], separators=(",", ":")
    )


def conversation(producer: str) -> tuple[list[tuple], list[tuple[int, tuple]], list[tuple]]:
    """(the whole history, each call's (input length, output), tokens per call)."""
    _, _, tool, agent = PRODUCERS[producer]
    first_id = None if producer == "litellm" else "call_1"  # LiteLLM's reply has no id
    adk = producer.startswith("google-adk")

    def result(order: str, shown: bool = False) -> str:
        if not adk:
            return f"{order}: shipped"
        return json.dumps({"result": f"{order}: shipped"}, separators=None if shown else (",", ":"))

    history = [
        ("system", ADK_SYSTEM if adk else SYSTEM, None, None),
        ("user", ASK, None, None),
        ("assistant", None, call(tool, "call_1", "A-1042"), None),
        ("tool", result("A-1042"), None, "call_1"),
        ("assistant", f"Here is what I found: {result('A-1042', True)}", None, None),
        ("user", THANKS, None, None),
    ]
    calls = [(2, ("assistant", None, call(tool, first_id, "A-1042"), None)), (4, history[4])]
    if agent:
        history += [
            ("assistant", None, call(tool, "call_2", "A-1"), None),
            ("tool", result("A-1"), None, "call_2"),
            ("assistant", f"Here is what I found: {result('A-1', True)}", None, None),
        ]
        calls += [(6, history[6]), (8, history[8])]
        tokens = (
            [(18, 2), (21, 8), (30, 2), (33, 8)]
            if adk  # its longer instruction
            else [(9, 2), (11, 7), (19, 2), (21, 7)]
        )
    else:
        history += [("assistant", "You said: Thanks!", None, None)]
        calls += [(6, history[6])]
        tokens = [(9, 2), (11, 7), (19, 3)]
    return history, calls, tokens


def assert_py_thread(c: Collector, producer: str, session: str) -> None:
    """The views of one producer's conversation, whatever else the store holds."""
    service, convention, _, agent = PRODUCERS[producer]
    history, calls, tokens = conversation(producer)
    n = len(calls)
    assert rows(
        c,
        "SELECT turn_count, llm_call_count, input_tokens, output_tokens, "
        "service_name FROM threads WHERE thread_id = ?",
        session,
    ) == [(2, n, sum(i for i, _ in tokens), sum(o for _, o in tokens), service)]
    assert rows(
        c,
        "SELECT turn_index, llm_call_count FROM turns WHERE thread_id = ? ORDER BY turn_index",
        session,
    ) == [(1, 2), (2, 2 if agent else 1)]
    model = ADK_CALL.get(producer, OPENAI_CALL)
    assert rows(
        c,
        "SELECT operation, provider, request_model, response_model, input_tokens, "
        "output_tokens, convention FROM llm_calls WHERE thread_id = ? "
        "ORDER BY start_time",
        session,
    ) == [(*model, i, o, convention) for i, o in tokens]
    expected = []
    for length, output in calls:
        expected += [("input", i, *m) for i, m in enumerate(history[:length])]
        expected.append(("output", 0, *output))
    assert (
        rows(
            c,
            "SELECT m.direction, m.position, m.role, m.content, m.tool_calls::VARCHAR, "
            "m.tool_call_id FROM messages m JOIN llm_calls l USING (trace_id, span_id) "
            "WHERE m.thread_id = ? ORDER BY l.start_time, m.direction, m.position",
            session,
        )
        == expected
    )
    shown = [*history[:2], calls[0][1], *history[3:]]  # the reply as the model gave it
    assert (
        rows(
            c,
            "SELECT role, content, tool_calls::VARCHAR, tool_call_id FROM transcript "
            "WHERE thread_id = ? ORDER BY seq",
            session,
        )
        == shown
    )


@pytest.fixture
def llm():
    from otel_threads.testing.fakellm import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "py.duckdb", grpc=ANY, http=ANY, api=None) as c:
        yield c


@pytest.mark.parametrize("producer", list(PRODUCERS))
def test_each_producer_on_its_own_store(collector, llm, producer):
    run(producer, collector, llm.base_url, f"{producer}-session")
    assert_py_thread(collector, producer, f"{producer}-session")
    assert rows(collector, "SELECT count(*) FROM derive_errors") == [(0,)]


def test_every_producer_into_one_store(collector):
    """Many apps, one collector: each conversation is read as it was on its own store."""
    from otel_threads.testing.fakellm import FakeLLM

    producers = [
        p for p in PRODUCERS if p != "google-adk-2" or ADK2_PYTHON.exists() or os.environ.get("CI")
    ]  # ADK 2 needs its virtualenv (CI has it)

    def one(producer: str) -> None:
        with FakeLLM() as llm:  # each app its own model server, so call ids start at 1
            run(producer, collector, llm.base_url, f"shared-{producer}")

    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two apps at a time
        for done in [pool.submit(one, p) for p in producers]:
            done.result()
    js = [JS_RUNS[0], JS_RUNS[-1]]  # v6 and v7, through different exporters
    for sdk, traces, logs in js:
        with FakeLLM() as llm:
            converse_js(collector, llm.base_url, sdk, traces, logs, f"shared-js-{sdk}")
    for producer in producers:
        assert_py_thread(collector, producer, f"shared-{producer}")
    for sdk, _, _ in js:
        assert_js_thread(collector, sdk, f"shared-js-{sdk}")
    assert rows(collector, "SELECT count(*), sum(turn_count) FROM threads") == [
        (len(producers) + len(js), 2 * (len(producers) + len(js)))
    ]
    assert rows(collector, "SELECT count(*) FROM derive_errors") == [(0,)]
