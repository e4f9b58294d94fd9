"""Real JavaScript producers: the Vercel AI SDK v6 and v7 on Node, exporting with the
OpenTelemetry JS SDK's three trace exporters (gRPC, HTTP/JSON, HTTP/protobuf: the HTTP
ones send chunked bodies) and its three logs exporters, into a real collector.

tests/js/converse.mjs holds a two-turn conversation (a tool loop, then a streamed
answer) against otel_threads.testing.fakellm; the views must read it whole: one thread named by
the session id, two turns, three LLM calls with their tokens, each call's history in
order with the tool call and its result, the transcript, and the log records.
The npm packages are pinned by tests/js/package-lock.json (`.ci/run` installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from otel_threads.collector import Collector
from otel_threads.collector.testing import running

JS = Path(__file__).parent / "js"
ANY = ("127.0.0.1", 0)
SYSTEM = "You are a support bot."
ASK = "Where is order A-1042?"
RESULT = "A-1042: shipped"
ANSWER = f"Here is what I found: {RESULT}"
THANKS = "Thanks!"
REPLY = f"You said: {THANKS}"
CALL = '[{"id":"call_1","name":"get_order_status","arguments":{"order_id":"A-1042"}}]'
#: (SDK, trace exporter, logs exporter): every exporter of each signal, with each SDK
RUNS = [
    ("v6", "grpc", "http/protobuf"),
    ("v6", "http/json", "grpc"),
    ("v6", "http/protobuf", "http/json"),
    ("v7", "grpc", "http/json"),
    ("v7", "http/json", "http/protobuf"),
    ("v7", "http/protobuf", "grpc"),
]
CONVENTION = {"v6": "vercel-ai-legacy", "v7": "semconv-1.37"}


def node_or_skip() -> str:
    node = shutil.which("node")
    if node and (JS / "node_modules").is_dir():
        return node
    reason = "needs node and `npm ci --prefix tests/js`"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/run installs them)")
    pytest.skip(reason)


def converse(c: Collector, llm_url: str, sdk: str, traces: str, logs: str, session: str) -> None:
    """Run tests/js/converse.mjs against the collector ``c``."""
    out = subprocess.run(
        [
            node_or_skip(),
            "converse.mjs",
            "--sdk",
            sdk,
            "--traces",
            traces,
            "--logs",
            logs,
            "--session",
            session,
            "--llm",
            llm_url,
            "--grpc",
            c.endpoints.grpc,
            "--http",
            c.endpoints.http,
        ],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"turn 1: {ANSWER}", f"turn 2: {REPLY}"], out.stdout


def rows(c: Collector, sql: str, *params: object) -> list[tuple]:
    assert c.store.sync(30), "derivation did not finish"
    with c.store.cursor() as cur:
        return cur.execute(sql, list(params)).fetchall()


def assert_thread(c: Collector, sdk: str, session: str, call_id: str = "call_1") -> None:
    """The views of one JS conversation, whatever else the store holds."""
    call = CALL.replace("call_1", call_id)
    assert rows(
        c,
        "SELECT turn_count, span_count, llm_call_count, input_tokens, "
        "output_tokens, service_name FROM threads WHERE thread_id = ?",
        session,
    ) == [(2, 6 if sdk == "v6" else 9, 3, 39 if sdk == "v6" else 37, 12, f"vercel-ai-{sdk}")]
    root = "ai.generateText" if sdk == "v6" else "invoke_agent gpt-4o-mini"
    second = "ai.streamText" if sdk == "v6" else "invoke_agent gpt-4o-mini"
    assert rows(
        c,
        "SELECT turn_index, name, llm_call_count FROM turns WHERE thread_id = ? "
        "ORDER BY turn_index",
        session,
    ) == [(1, root, 2), (2, second, 1)]
    # the fake model counts words: 9 / 11 prompt tokens in turn 1; turn 2 replays the
    # history as each SDK keeps it (v7's response.messages leave the tool loop out)
    assert rows(
        c,
        "SELECT operation, provider, request_model, response_model, input_tokens, "
        "output_tokens, convention FROM llm_calls WHERE thread_id = ? "
        "ORDER BY start_time",
        session,
    ) == [
        ("chat", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", i, o, CONVENTION[sdk])
        for i, o in ((9, 2), (11, 7), (19 if sdk == "v6" else 17, 3))
    ]
    history = [
        ("system", SYSTEM, None, None),
        ("user", ASK, None, None),
        ("assistant", None, call, None),
        ("tool", RESULT, None, call_id),
    ]
    later = (
        [*history, ("assistant", ANSWER, None, None)]
        if sdk == "v6"
        else [
            ("system", SYSTEM, None, None),
            ("user", ASK, None, None),
            ("assistant", ANSWER, None, None),
        ]
    )
    expected = [
        *[("input", i, *m) for i, m in enumerate(history[:2])],
        ("output", 0, "assistant", None, call, None),
        *[("input", i, *m) for i, m in enumerate(history)],
        ("output", 0, "assistant", ANSWER, None, None),
        *[("input", i, *m) for i, m in enumerate([*later, ("user", THANKS, None, None)])],
        ("output", 0, "assistant", REPLY, None, None),
    ]
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
    assert rows(
        c,
        "SELECT role, content, tool_calls::VARCHAR, tool_call_id FROM transcript "
        "WHERE thread_id = ? ORDER BY seq",
        session,
    ) == [
        *history,
        ("assistant", ANSWER, None, None),
        ("user", THANKS, None, None),
        ("assistant", REPLY, None, None),
    ]
    # the log records: the tool's in its span (turn 1), the app's after each turn
    tool = "ai.toolCall" if sdk == "v6" else "execute_tool get_order_status"
    assert rows(
        c,
        """
        SELECT l.body::VARCHAR, l.service_name, s.name, s.turn_id = t.turn_id
        FROM logs l
        LEFT JOIN spans s ON s.trace_id = l.trace_id AND s.span_id = l.span_id
        LEFT JOIN turns t ON t.thread_id = s.thread_id AND t.turn_index = 1
        WHERE l.attributes->>'app.session' = ? ORDER BY l.observed_time_unix_nano""",
        session,
    ) == [
        ('"looked up A-1042"', f"vercel-ai-{sdk}", tool, True),
        (f'"turn 1: {ANSWER}"', f"vercel-ai-{sdk}", None, None),
        (f'"turn 2: {REPLY}"', f"vercel-ai-{sdk}", None, None),
    ]


@pytest.fixture
def llm():
    from otel_threads.testing.fakellm import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "js.duckdb", grpc=ANY, http=ANY, api=None) as c:
        yield c


@pytest.mark.parametrize(
    ("sdk", "traces", "logs"), RUNS, ids=[f"{s}-traces-{t}-logs-{lg}" for s, t, lg in RUNS]
)
def test_vercel_ai_sdk_through_each_exporter(collector, llm, sdk, traces, logs):
    converse(collector, llm.base_url, sdk, traces, logs, f"session-{sdk}")
    assert_thread(collector, sdk, f"session-{sdk}")
    assert rows(collector, "SELECT count(*) FROM derive_errors") == [(0,)]
