"""Evaluators (issue 16): `otel-threads eval` run for real, in a subprocess, on a file
and through a running collector. Threads are sent over OTLP with chosen times: some
quiet for hours, one just now. Each thread is judged once per (evaluator, last turn),
also across a stop with SIGINT and a restart; an evaluator's exception is recorded for
its thread; a new turn makes a thread due again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from otel_threads import EvaluationResult, ThreadsClient, ThreadSpanProcessor, thread
from otel_threads.collector.testing import running, sql

ROOT = Path(__file__).resolve().parents[1]
HOUR_NS = 3600 * 10**9
QUIET = ["q1", "q2", "q3", "q4"]  # last updated 5, 4, 3, 2 hours ago: oldest first

EVALUATOR = '''
    """A test evaluator: sleeps a little, notes each call in $EVAL_CALLS, raises for
    the thread "boom", else judges the thread and its last turn."""
    import os
    import time

    from otel_threads import EvaluationResult


    def judge(detail):
        with open(os.environ["EVAL_CALLS"], "a") as f:
            f.write(detail.thread.thread_id + "\\n")
        time.sleep(float(os.environ.get("EVAL_SLEEP", "0")))
        if detail.thread.thread_id == "boom":
            raise RuntimeError("the judge fell over\\nsecond line")
        last = detail.turns[-1]
        return [
            EvaluationResult("turns", score=len(detail.turns)),
            {"name": "last", "label": last.first_input or "-", "turn_id": last.turn_id},
        ]


    def bad(detail):
        return 42
'''


def _messages(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in pairs])


def send_turns(endpoint: str, turns: list[tuple], failing: str | None = None) -> None:
    """One turn per (thread id, start in ns since the epoch, what the user says), each
    with an LLM call that answers, sent with the real OTLP/gRPC exporter. A turn whose
    user says ``failing`` runs a tool that fails."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    tracer = provider.get_tracer("app")
    for thread_id, at, text in turns:
        with (
            thread(thread_id),
            tracer.start_as_current_span("turn", start_time=at, end_on_exit=False) as turn,
        ):
            call = tracer.start_span(
                "chat gpt-4o",
                start_time=at + 1000,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.input.messages": _messages(("user", text)),
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]
                    ),
                },
            )
            call.end(end_time=at + 2000)
            if text == failing:
                tool = tracer.start_span("execute_tool lookup_order", start_time=at + 2000)
                tool.set_status(Status(StatusCode.ERROR, "order service timed out"))
                tool.end(end_time=at + 2500)
        turn.end(end_time=at + 3000)
    provider.shutdown()


def quiet_and_recent(endpoint: str) -> None:
    """q1..q4 and boom quiet for hours (q4 with two turns), recent: a turn just now."""
    now = time.time_ns()
    turns = [(t, now - (5 - i) * HOUR_NS, f"hello from {t}") for i, t in enumerate(QUIET)]
    turns += [
        ("q4", now - 2 * HOUR_NS + 10**9, "and again"),
        ("boom", now - 6 * HOUR_NS, "boom"),
        ("recent", now, "just now"),
    ]
    send_turns(endpoint, turns)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A file nobody holds, with the threads of `quiet_and_recent`."""
    db = tmp_path / "e.duckdb"
    with running(db, http=None) as c:
        quiet_and_recent(c.endpoints.grpc)
        assert c.store.sync(60)
    return db


@pytest.fixture
def evaluator(tmp_path: Path) -> dict[str, str]:
    """The environment of an eval subprocess that can import `evals` (tmp_path is
    its working directory), noting its calls in tmp_path/calls."""
    (tmp_path / "evals.py").write_text(textwrap.dedent(EVALUATOR))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["EVAL_CALLS"] = str(tmp_path / "calls")
    return env


def eval_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "otel_threads.cli", "eval", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().split() if path.exists() else []


def rows(db: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query).fetchall()


class _AnyTurn:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and len(other) == 16


ANY_TURN = _AnyTurn()
RUNS = "SELECT thread_id, result_count, error FROM evaluation_runs ORDER BY thread_id"
NOTES = (
    "SELECT thread_id, name, score, label, turn_id IS NULL FROM annotations "
    "WHERE source = 'evals.judge' ORDER BY thread_id, name"
)


def expected_notes(db: Path, threads: list[str]) -> list[tuple]:
    last = dict(rows(db, "SELECT thread_id, last_turn_id FROM threads"))
    out = []
    for t in threads:
        text = "and again" if t == "q4" else f"hello from {t}"
        turn_ids = rows(db, f"SELECT turn_id FROM turns WHERE thread_id = '{t}'")
        assert last[t] in [r[0] for r in turn_ids]
        out += [(t, "last", None, text, False), (t, "turns", float(len(turn_ids)), None, True)]
    return out


def test_one_pass_on_the_file_judges_the_quiet_threads_once(tmp_path, store, evaluator):
    out = finished(eval_cli(tmp_path, evaluator, "--run", "evals:judge", "--db", str(store)))
    assert out.splitlines()[-1] == "evaluated 5 threads, 8 results, 1 failed"
    assert calls(tmp_path) == ["boom", *QUIET]  # least recently updated first; not recent
    assert rows(store, RUNS) == [
        ("boom", 0, "RuntimeError: the judge fell over"),
        *[(t, 2, None) for t in QUIET],
    ]
    assert rows(store, NOTES) == expected_notes(store, QUIET)
    assert rows(store, "SELECT annotation_count FROM threads WHERE thread_id = 'q4'") == [(2,)]
    # each row names the thread's last turn
    assert rows(
        store,
        "SELECT count(*) FROM evaluation_runs r JOIN threads t USING (thread_id) "
        "WHERE r.last_turn_id = t.last_turn_id",
    ) == [(5,)]

    again = finished(eval_cli(tmp_path, evaluator, "--run", "evals:judge", "--db", str(store)))
    assert again.splitlines() == ["evaluated 0 threads, 0 results, 0 failed"]
    assert len(calls(tmp_path)) == 5

    # with a shorter quiet time the recent thread is due too; 0: every thread not running
    out = finished(
        eval_cli(
            tmp_path, evaluator, "--run", "evals:judge", "--db", str(store), "--quiet-for", "0"
        )
    )
    assert calls(tmp_path)[5:] == ["recent"]
    assert out.splitlines()[-1] == "evaluated 1 thread, 2 results, 0 failed"


def test_sigint_stops_after_the_thread_in_hand_and_a_restart_finishes(tmp_path, store, evaluator):
    env = {**evaluator, "EVAL_SLEEP": "0.5"}
    args = ("--run", "evals:judge", "--db", str(store), "--quiet-for", "1h")
    proc = eval_cli(tmp_path, env, *args)
    deadline = time.monotonic() + 60
    while len(calls(tmp_path)) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out = finished(proc)
    judged = len(calls(tmp_path))
    assert 2 <= judged < 5
    assert out.splitlines()[-1].endswith("; stopped")
    # what was judged was recorded, thread in hand included; nothing else
    assert [r[0] for r in rows(store, RUNS)] == sorted(calls(tmp_path))

    finished(eval_cli(tmp_path, env, *args))
    assert sorted(calls(tmp_path)) == sorted(["boom", *QUIET])  # each exactly once
    assert rows(store, NOTES) == expected_notes(store, QUIET)
    assert len(rows(store, RUNS)) == 5


def test_a_new_turn_makes_a_thread_due_again(tmp_path, store, evaluator):
    args = ("--run", "evals:judge", "--db", str(store))
    finished(eval_cli(tmp_path, evaluator, *args))
    with running(store, http=None) as c:
        send_turns(c.endpoints.grpc, [("q2", time.time_ns() - HOUR_NS, "one more thing")])
        assert c.store.sync(60)
    finished(eval_cli(tmp_path, evaluator, *args))
    assert calls(tmp_path) == ["boom", *QUIET, "q2"]
    got = rows(
        store,
        "SELECT label, turn_id = (SELECT last_turn_id FROM threads WHERE thread_id = 'q2') "
        "FROM annotations WHERE thread_id = 'q2' AND name = 'last' ORDER BY created_at",
    )
    assert got == [("hello from q2", False), ("one more thing", True)]
    assert rows(store, "SELECT count(*) FROM evaluation_runs WHERE thread_id = 'q2'") == [(2,)]


def test_through_a_running_collector_while_ingest_goes_on(tmp_path, store, evaluator):
    env = {**evaluator, "EVAL_SLEEP": "0.2"}
    with running(store, http=None) as c:
        # the file, named: the collector holds it, so eval goes through its API
        proc = eval_cli(tmp_path, env, "--run", "evals:judge", "--db", str(store))
        deadline = time.monotonic() + 60
        while not calls(tmp_path):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        send_turns(c.endpoints.grpc, [("meanwhile", time.time_ns(), "hi")])  # acknowledged
        out = finished(proc)
        assert out.splitlines()[-1] == "evaluated 5 threads, 8 results, 1 failed"
        assert sql(c, "SELECT count(*) FROM threads WHERE thread_id = 'meanwhile'") == [(1,)]
        assert sql(c, RUNS) == [
            ("boom", 0, "RuntimeError: the judge fell over"),
            *[(t, 2, None) for t in QUIET],
        ]
        again = eval_cli(tmp_path, env, "--run", "evals:judge", "--url", c.endpoints.api)
        assert finished(again).splitlines() == ["evaluated 0 threads, 0 results, 0 failed"]
        client = ThreadsClient(c.endpoints.api)
        assert client.pending_evaluations("evals.judge", 3600) == []
        assert [p.thread_id for p in client.pending_evaluations("other", 3600)] == [
            "boom",
            *QUIET,
        ]
    assert rows(store, NOTES) == expected_notes(store, QUIET)


@pytest.mark.parametrize("over_http", [False, True])
def test_recording_twice_stores_once_and_bad_results_are_the_error(store, over_http):
    def check(client: ThreadsClient) -> None:
        (p,) = [p for p in client.pending_evaluations("e", 3600) if p.thread_id == "q1"]
        assert client.record_evaluation("e", "q1", p.last_turn_id, [EvaluationResult("x", "y")])
        assert not client.record_evaluation("e", "q1", p.last_turn_id, [{"name": "x", "score": 1}])
        # not an annotation: stored as the evaluator's error, no result written
        assert client.record_evaluation("e", "q2", None, [{"name": "x"}, {"name": "y", "score": 1}])
        with pytest.raises(KeyError, match="no thread 'nope'"):
            client.record_evaluation("e", "nope", None, [])
        with pytest.raises(ValueError, match="evaluator's name"):
            client.pending_evaluations("", 1)

    if over_http:
        with running(store, http=None) as c:
            check(ThreadsClient(c.endpoints.api))
    else:
        check(ThreadsClient(store))
    assert rows(store, "SELECT thread_id, name, label, source FROM annotations") == [
        ("q1", "x", "y", "e")
    ]
    assert rows(store, "SELECT thread_id, result_count, error FROM evaluation_runs ORDER BY 1") == [
        ("q1", 1, None),
        (
            "q2",
            0,
            "the evaluator returned result 1: annotation 'x' needs a label, a score or an "
            "explanation",
        ),
    ]


def test_what_is_not_results_is_recorded_and_a_missing_function_is_one_line(
    tmp_path, store, evaluator
):
    out = finished(eval_cli(tmp_path, evaluator, "--run", "evals:bad", "--db", str(store)))
    assert out.splitlines()[-1] == "evaluated 5 threads, 0 results, 5 failed"
    assert set(rows(store, "SELECT error FROM evaluation_runs")) == {
        (
            "the evaluator returned the result is a int: return an EvaluationResult, a dict with "
            "name, label, score, explanation, turn_id, a list of them, or None",
        )
    }
    for spec, message in [
        ("evals:nope", "Error: evals has no function 'nope'"),
        ("no_such_mod:f", "Error: no module 'no_such_mod' here or on sys.path"),
    ]:
        proc = eval_cli(tmp_path, evaluator, "--run", spec, "--db", str(store))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and err.startswith(message) and err.count("\n") == 1


def test_the_rules_example_finds_a_failed_tool_and_a_repeated_question(tmp_path, evaluator):
    db = tmp_path / "r.duckdb"
    at = time.time_ns() - HOUR_NS
    with running(db, http=None) as c:
        said = ["Where is order A-7?", "Hello?", "where is  order A-7", "Thanks"]
        send_turns(c.endpoints.grpc, [("r", at + i * 10**9, t) for i, t in enumerate(said)])
        send_turns(c.endpoints.grpc, [("fine", at, "Hi")], failing="Hello?")
        send_turns(c.endpoints.grpc, [("tool", at, "Hello?")], failing="Hello?")
        assert c.store.sync(60)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_threads.cli",
            "eval",
            "--db",
            str(db),
            "--run",
            "examples.eval_rules:evaluate",
            "--name",
            "rules",
        ],
        cwd=ROOT,
        env=evaluator,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert finished(proc).splitlines()[-1] == "evaluated 3 threads, 5 results, 0 failed"
    got = rows(
        db,
        "SELECT a.thread_id, a.name, a.label, a.score, t.turn_index, a.explanation "
        "FROM annotations a LEFT JOIN turns t USING (thread_id, turn_id) "
        "WHERE a.source = 'rules' ORDER BY a.thread_id, a.name",
    )
    assert got == [
        ("fine", "rules", "pass", 1.0, None, None),
        ("r", "repeated", "repeated", 0.0, 3, "the user said this in turn 1 already"),
        ("r", "rules", "fail", 0.0, None, "repeated"),
        ("tool", "rules", "fail", 0.0, None, "turn_error"),
        (
            "tool",
            "turn_error",
            "error",
            0.0,
            1,
            "execute_tool lookup_order failed: order service timed out",
        ),
    ]


def wait_for_calls(tmp_path: Path, proc: subprocess.Popen, n: int) -> None:
    deadline = time.monotonic() + 60
    while len(calls(tmp_path)) < n:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)


def test_kill_9_loses_at_most_the_thread_in_hand(tmp_path, store, evaluator):
    env = {**evaluator, "EVAL_SLEEP": "0.5"}
    args = ("--run", "evals:judge", "--db", str(store))
    proc = eval_cli(tmp_path, env, *args)
    wait_for_calls(tmp_path, proc, 3)
    proc.kill()
    proc.communicate(timeout=60)
    recorded = [r[0] for r in rows(store, RUNS)]
    assert len(recorded) in (2, 3)  # the third call's thread was in hand
    finished(eval_cli(tmp_path, evaluator, *args))
    assert sorted(set(calls(tmp_path))) == sorted(["boom", *QUIET])
    assert rows(store, NOTES) == expected_notes(store, QUIET)  # each result once
    assert len(rows(store, RUNS)) == 5


def test_follow_judges_new_work_until_sigterm(tmp_path, store, evaluator):
    with running(store, http=None) as c:
        proc = eval_cli(
            tmp_path, evaluator, "--run", "evals:judge", "--url", c.endpoints.api,
            "--follow", "--interval", "1s",
        )  # fmt: skip
        wait_for_calls(tmp_path, proc, 5)
        send_turns(c.endpoints.grpc, [("later", time.time_ns() - HOUR_NS, "late")])
        wait_for_calls(tmp_path, proc, 6)
        deadline = time.monotonic() + 60
        while len(sql(c, RUNS)) < 6:  # recorded just after the call
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out = finished(proc)
    assert calls(tmp_path)[5:] == ["later"]
    assert out.splitlines()[-1] == "evaluated 6 threads, 10 results, 1 failed; stopped"


def _post(c, path: str, body: object, **headers: str) -> tuple[int, dict]:
    req = urllib.request.Request(
        c.endpoints.api + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_the_evaluation_routes_need_the_token_refuse_other_origins_and_bad_bodies(store):
    auth = {"Authorization": "Bearer s3cret"}
    record = {"evaluator": "e", "thread_id": "q1", "last_turn_id": None, "results": []}
    with running(store, http=None, token="s3cret") as c:
        pending = {"evaluator": "e", "quiet_for_s": 3600}
        assert _post(c, "/evaluations/pending", pending)[0] == 401
        assert _post(c, "/evaluations", record)[0] == 401
        assert _post(c, "/evaluations", record, Origin="http://evil.example", **auth)[0] == 403
        for body in [{"evaluator": "e"}, {**pending, "x": 1}, {**pending, "quiet_for_s": "1h"}]:
            assert _post(c, "/evaluations/pending", body, **auth)[0] == 400, body
        status, out = _post(c, "/evaluations/pending", pending, **auth)
        (q1,) = [t["last_turn_id"] for t in out["threads"] if t["thread_id"] == "q1"]
        record["last_turn_id"] = q1
        assert _post(c, "/evaluations", {**record, "results": 3}, **auth) == (
            201,
            {"recorded": True, "thread_id": "q1"},
        )
        assert _post(c, "/evaluations", {**record, "thread_id": "x"}, **auth)[0] == 404
        status, out = _post(c, "/evaluations/pending", {**pending, "limit": 2}, **auth)
        assert (status, out) == (
            200,
            {"threads": [{"thread_id": t, "last_turn_id": ANY_TURN} for t in ("boom", "q2")]},
        )
        assert sql(c, RUNS) == [("q1", 0, "the evaluator returned results must be a list, got int")]


def test_an_ended_thread_is_judged_without_waiting_for_quiet(tmp_path, evaluator):
    db = tmp_path / "x.duckdb"
    with running(db, http=None) as c:
        now = time.time_ns()
        provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
        # (the provider that starts the end=True marker span: not a global one here)
        provider.add_span_processor(ThreadSpanProcessor(tracer_provider=provider))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=c.endpoints.grpc, insecure=True))
        )
        tracer = provider.get_tracer("app")
        with thread("ended", end=True), tracer.start_as_current_span("turn", start_time=now):
            pass
        with thread("open"), tracer.start_as_current_span("turn", start_time=now):
            pass
        provider.shutdown()
        assert sql(c, "SELECT thread_id, ended FROM threads ORDER BY 1") == [
            ("ended", True),
            ("open", False),
        ]
    out = finished(eval_cli(tmp_path, evaluator, "--run", "evals:judge", "--db", str(db)))
    assert calls(tmp_path) == ["ended"]
    assert out.splitlines()[-1] == "evaluated 1 thread, 2 results, 0 failed"
