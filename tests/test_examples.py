"""Every example runs, against a real collector over OTLP, and produces exactly the
result its docstring states (the transcripts are read from the docstrings)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from otel_threads.cli import main as cli
from otel_threads.collector import Collector
from otel_threads.collector.testing import running

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ANY = ("127.0.0.1", 0)


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "examples.duckdb", grpc=ANY, http=None, api=ANY) as c:
        yield c


def run(c: Collector, example: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = c.endpoints.grpc
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{example}.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert c.store.sync(30)
    return done.stdout


def rows(c: Collector, query: str, *params: object) -> list[tuple]:
    with c.store.cursor() as cur:
        return cur.execute(query, list(params)).fetchall()


def docstring_transcripts(example: str) -> list[list[tuple[str, str]]]:
    """The transcript blocks of an example's docstring: indented `role  text` lines."""
    doc = ast.get_docstring(ast.parse((EXAMPLES / f"{example}.py").read_text()))
    blocks, block = [], []
    for line in [*doc.splitlines(), ""]:
        m = re.fullmatch(r" {4}(system|user|assistant|tool) {2,}(.+)", line)
        if m:
            block.append((m.group(1), m.group(2)))
        elif block:
            blocks.append(block)
            block = []
    assert blocks, f"{example}'s docstring states no transcript"
    return blocks


def transcript(c: Collector, thread_id: str) -> list[tuple[str, str]]:
    out = []
    for role, content, calls in rows(
        c,
        "SELECT role, content, tool_calls FROM transcript WHERE thread_id = ? ORDER BY seq",
        thread_id,
    ):
        if content is None:
            content = ", ".join(
                f"{t['name']}({json.dumps(t['arguments'])})" for t in json.loads(calls)
            )
        out.append((role, content))
    return out


def turns(c: Collector, thread_id: str) -> list[tuple]:
    return rows(
        c,
        "SELECT name, span_count, llm_call_count FROM turns WHERE thread_id = ? "
        "ORDER BY turn_index",
        thread_id,
    )


def spans_of_turns(c: Collector, thread_id: str) -> list[list[str]]:
    """Per turn, in order: the names of its spans (sorted)."""
    got = rows(
        c,
        """
        SELECT list(s.name ORDER BY s.name) FROM span_threads st
        JOIN spans s USING (trace_id, span_id)
        JOIN turns t ON t.thread_id = st.thread_id AND t.turn_id = st.turn_id
        WHERE st.thread_id = ? GROUP BY t.turn_index ORDER BY t.turn_index""",
        thread_id,
    )
    return [r[0] for r in got]


def test_hello_thread(collector):
    out = run(collector, "hello_thread")
    thread_id = re.search(r"thread id: (\S+)", out).group(1)
    turn_id = re.search(r"turn id: (\S+)", out).group(1)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", thread_id)
    assert rows(collector, "SELECT thread_id, turn_count, span_count FROM threads") == [
        (thread_id, 1, 2)
    ]
    assert rows(collector, "SELECT turn_id, name FROM turns") == [(turn_id, "handle_message")]
    assert spans_of_turns(collector, thread_id) == [["call_model", "handle_message"]]
    assert rows(collector, "SELECT count(*) FROM transcript") == [(0,)]


def test_customer_service_resumed_across_three_processes(collector):
    out = run(collector, "customer_service")
    assert out.count("visit ") == 3 and "thread id: support_thread_42" in out
    assert rows(collector, "SELECT thread_id, turn_count, user_id FROM threads") == [
        ("support_thread_42", 4, "cust-ana")
    ]
    llm = "chat gpt-4o-mini"
    assert spans_of_turns(collector, "support_thread_42") == [
        sorted(["handle_message", "lookup_profile", llm]),
        sorted(["handle_message", "lookup_profile", "get_order_status", llm, llm]),
        sorted(["handle_message", "lookup_profile", "create_ticket", llm, llm]),
        sorted(["handle_message", "lookup_profile", "resolve_ticket", llm, llm]),
    ]
    assert [t[2] for t in turns(collector, "support_thread_42")] == [1, 2, 2, 2]
    (expected,) = docstring_transcripts("customer_service")
    assert transcript(collector, "support_thread_42") == expected


def test_agent_loop_with_an_auto_id_and_an_explicit_one(collector):
    out = run(collector, "agent_loop")
    auto, explicit = re.findall(r"thread id: (\S+)", out)
    assert explicit == "user_session_123" and re.fullmatch(r"[0-9a-f-]{36}", auto)
    assert sorted(rows(collector, "SELECT thread_id, turn_count FROM threads")) == sorted(
        [(auto, 2), (explicit, 2)]
    )
    steps = sorted(
        ["process_user_message", "retrieve", "classify", "chat gpt-4o-mini", "format_answer"]
    )
    for thread_id in (auto, explicit):
        assert turns(collector, thread_id) == [("process_user_message", 5, 1)] * 2
        assert spans_of_turns(collector, thread_id) == [steps, steps]
    (expected,) = docstring_transcripts("agent_loop")
    assert [m for m in transcript(collector, explicit) if m[0] != "system"] == expected
    assert [m for m in transcript(collector, auto) if m[0] != "system"] == [
        ("user", "What plans do you offer?"),
        ("assistant", "There are Free, Pro and Team plans."),
        ("user", "Can I pay yearly?"),
        ("assistant", "Yes: yearly billing saves two months."),
    ]


def test_unbalanced_depth_puts_five_turns_in_one_thread(collector):
    run(collector, "unbalanced_depth")
    assert rows(collector, "SELECT thread_id, turn_count FROM threads") == [("unbalanced-demo", 5)]
    assert [(n, s) for n, s, _ in turns(collector, "unbalanced-demo")] == [
        ("handle_request", 3),
        ("handle_request", 5),
    ] * 2 + [("handle_request", 3)]
    assert rows(collector, "SELECT count(*) FROM span_threads WHERE thread_id IS NULL") == [(0,)]
    (expected,) = docstring_transcripts("unbalanced_depth")
    assert transcript(collector, "unbalanced-demo") == expected


def test_nested_threads_one_per_layer(collector):
    run(collector, "nested_threads")
    assert rows(collector, "SELECT thread_id, turn_count FROM threads ORDER BY thread_id") == [
        ("app_4711", 2),
        ("app_4711_infra", 4),
        ("app_4711_logic", 4),
    ]
    assert [t[0] for t in turns(collector, "app_4711_infra")] == [
        "load_session",
        "save_session",
    ] * 2
    assert turns(collector, "app_4711_logic") == [("classify", 1, 0), ("answer", 2, 1)] * 2
    assert turns(collector, "app_4711") == [("handle_request", 1, 0)] * 2
    (expected,) = docstring_transcripts("nested_threads")
    assert transcript(collector, "app_4711_logic") == expected
    assert rows(collector, "SELECT DISTINCT thread_id FROM transcript") == [("app_4711_logic",)]


def test_two_services_make_one_thread(collector):
    run(collector, "two_services")
    assert rows(collector, "SELECT thread_id, turn_count FROM threads") == [("order-chat-7", 2)]
    assert turns(collector, "order-chat-7") == [("front.handle", 5, 1)] * 2
    per_turn = rows(
        collector,
        """
        SELECT t.turn_index, list(DISTINCT s.service_name ORDER BY s.service_name)
        FROM span_threads st JOIN spans s USING (trace_id, span_id)
        JOIN turns t ON t.thread_id = st.thread_id AND t.turn_id = st.turn_id
        GROUP BY t.turn_index ORDER BY t.turn_index""",
    )
    assert per_turn == [(1, ["back", "front"]), (2, ["back", "front"])]
    (expected,) = docstring_transcripts("two_services")
    assert transcript(collector, "order-chat-7") == expected


def test_linked_turns_regenerate_makes_a_fork(collector):
    out = run(collector, "linked_turns")
    thread_id = re.search(r"thread id: (\S+)", out).group(1)
    assert rows(collector, "SELECT turn_count, fork_count FROM threads") == [(4, 1)]
    (t1, p1), (t2, p2), (t3, p3), (t4, p4) = rows(
        collector, "SELECT turn_id, previous_turn_id FROM turns ORDER BY turn_index"
    )
    assert (p1, p2, p3, p4) == (None, t1, t2, t2)
    assert rows(collector, "SELECT parent_turn_id, child_turn_ids FROM forks") == [(t2, [t3, t4])]
    (expected,) = docstring_transcripts("linked_turns")
    assert transcript(collector, thread_id) == expected


def test_cli_has_help_with_an_example_and_a_version():
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    assert "0.1.0" in runner.invoke(cli, ["--version"]).output


def evaluate(c: Collector, spec: str) -> str:
    """``otel-threads eval --run spec`` through the collector's API, from the project
    folder (so ``examples.<name>`` imports), on every thread that has no turn running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_threads.cli",
            "eval",
            "--run",
            spec,
            "--quiet-for",
            "0",
            "--url",
            c.endpoints.api,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("examples.eval_rules:evaluate", ("rules", "pass", 1.0, None)),
        ("examples.eval_judge:judge", ("helpfulness", "helpful", 1.0, None)),
    ],
)
def test_evaluators_judge_the_customer_service_thread(collector, spec, expected):
    run(collector, "customer_service")
    out = evaluate(collector, spec)
    assert out.splitlines()[-1] == "evaluated 1 thread, 1 result, 0 failed"
    source = spec.replace(":", ".")
    assert rows(
        collector,
        "SELECT thread_id, name, label, score, turn_id FROM annotations WHERE source = ?",
        source,
    ) == [("support_thread_42", *expected)]
    assert evaluate(collector, spec).splitlines() == ["evaluated 0 threads, 0 results, 0 failed"]
