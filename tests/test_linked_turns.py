"""Linked turns and forks: previous_turn_id end to end (issue 5).

Spans come from real TracerProviders with ThreadSpanProcessor, sequential ids (so a
test can name a turn before it exists), and reach a real collector over OTLP/gRPC in
the order each test chooses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stored_app import KEPT_VIEWS, UNCOVERED_TURNS, App, kept_sql, sid

from otel_threads import current_turn_id, thread
from otel_threads.collector import Collector, Config
from otel_threads.collector.testing import sql

ANY = ("127.0.0.1", 0)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "linked_turns.py"


def start(tmp_path, **config) -> Collector:
    c = Collector(
        Config(
            parse_workers=0,
            db=str(tmp_path / "linked.duckdb"),
            grpc=ANY,
            http=None,
            api=ANY,
            **config,
        )
    )
    c.start()
    return c


@pytest.fixture
def collector(tmp_path):
    c = start(tmp_path)
    yield c
    c.stop()


def turn(
    app: App,
    name: str,
    previous: str | None = None,
    thread_id: str | None = None,
    children: int = 1,
) -> str:
    """One request: a turn (with children) in `thread(thread_id)` or, given only
    ``previous``, in a linked thread; returns the turn id the app stores."""
    block = (
        thread(thread_id, previous_turn_id=previous)
        if thread_id
        else thread(previous_turn_id=previous)
    )
    with block as t, app.tracer.start_as_current_span(name) as span:
        # the id the app stores is the turn span's id, current_turn_id() inside it
        assert current_turn_id() == format(span.get_span_context().span_id, "016x")
        for i in range(children):
            with app.tracer.start_as_current_span(f"{name}.step{i}"):
                pass
    assert t.last_turn_id == format(span.get_span_context().span_id, "016x")
    return t.last_turn_id


def test_linked_turns_without_a_thread_id_join_the_thread_of_the_turn_they_name(collector):
    app = App()
    with thread("chat-1") as t, app.tracer.start_as_current_span("ask-1"):  # 1
        pass
    first = t.last_turn_id
    second = turn(app, "ask-2", first)  # 2 (3)
    third = turn(app, "ask-3", second)  # 4 (5)
    app.send(collector)
    assert (first, second, third) == (sid(1), sid(2), sid(4))
    assert sql(
        collector,
        "SELECT thread_id, turn_id, turn_index, previous_turn_id, "
        "parent_turn_id, link_status, on_current_branch, span_count "
        "FROM turns ORDER BY turn_index",
    ) == [
        ("chat-1", sid(1), 1, None, None, None, True, 1),
        ("chat-1", sid(2), 2, sid(1), sid(1), "linked", True, 2),
        ("chat-1", sid(4), 3, sid(2), sid(2), "linked", True, 2),
    ]
    # the spans carry no thread id: it comes along the links
    assert sql(
        collector,
        "SELECT count(*) FILTER (WHERE thread_from_link), count(*) "
        "FROM span_threads WHERE thread_id = 'chat-1'",
    ) == [(4, 5)]
    assert sql(collector, "SELECT turn_count, fork_count, last_turn_id FROM threads") == [
        (3, 0, sid(4))
    ]
    assert sql(collector, "FROM unresolved_turns") == []


def run_example(c: Collector, *args: str) -> str:
    """examples/linked_turns.py in its own process, exporting to ``c`` over OTLP/gRPC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = c.endpoints.grpc
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_linear_chain_over_three_processes(collector, tmp_path):
    from otel_threads import ThreadsClient

    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        from linked_turns import ANSWERS, QUESTIONS
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    state = tmp_path / "state.json"
    for question in QUESTIONS:  # three requests, three processes: ids only in the file
        run_example(collector, "ask", question, "--state", str(state))
    stored = json.loads(state.read_text())
    ids = [t["turn_id"] for t in stored["turns"]]
    detail = ThreadsClient(collector.endpoints.api).thread(stored["thread_id"])
    assert [(t.turn_id, t.previous_turn_id, t.link_status, t.trace_id) for t in detail.turns] == [
        (ids[0], None, None, detail.turns[0].trace_id),
        (ids[1], ids[0], "linked", detail.turns[1].trace_id),
        (ids[2], ids[1], "linked", detail.turns[2].trace_id),
    ]
    assert len({t.trace_id for t in detail.turns}) == 3
    assert [(m.role, m.content) for m in detail.transcript] == [
        m for q in QUESTIONS for m in (("user", q), ("assistant", ANSWERS[q][0]))
    ]
    assert sql(collector, "SELECT count(*), count(DISTINCT thread_id) FROM span_threads") == [
        (6, 1)
    ]  # a turn and its LLM call per process, all in the thread


def test_a_chain_whose_middle_turn_arrives_last(collector):
    app = App()
    first = turn(app, "ask-1", thread_id="chat-2")  # 1 (2)
    second = turn(app, "ask-2", first)  # 3 (4)
    third = turn(app, "ask-3", second)  # 5 (6)
    fourth = turn(app, "ask-4", third)  # 7 (8)
    app.send(collector, ["ask-1", "ask-1.step0", "ask-4", "ask-4.step0", "ask-3", "ask-3.step0"])
    assert sql(collector, "SELECT turn_id FROM turns") == [(first,)]
    assert sql(
        collector,
        "SELECT turn_id, previous_turn_id, status, waiting_for, chain_length "
        "FROM unresolved_turns ORDER BY turn_id",
    ) == [(third, second, "pending", second, 1), (fourth, third, "pending", second, 2)]
    assert sql(collector, "SELECT count(*) FROM span_threads WHERE thread_id IS NULL") == [(4,)]
    app.send(collector, ["ask-2.step0"])  # the middle turn's child first: still waiting
    assert sql(collector, "SELECT count(*) FROM unresolved_turns") == [(2,)]
    app.send(collector, ["ask-2"])
    assert sql(
        collector,
        "SELECT turn_id, turn_index, link_status, span_count FROM turns "
        "WHERE thread_id = 'chat-2' ORDER BY turn_index",
    ) == [
        (first, 1, None, 2),
        (second, 2, "linked", 2),
        (third, 3, "linked", 2),
        (fourth, 4, "linked", 2),
    ]
    assert sql(collector, "SELECT count(*) FROM span_threads WHERE thread_id IS NULL") == [(0,)]
    assert sql(collector, "FROM unresolved_turns") == []
    for view in ("span_threads", "turns", "transcript", "threads"):  # kept == from scratch
        assert sql(collector, kept_sql(view)) == sql(
            collector, f"SELECT * FROM derive_{view} ORDER BY ALL"
        ), view
    assert sql(collector, UNCOVERED_TURNS) == []


# -- forks -----------------------------------------------------------------------------


class Chat:
    """An app whose requests each name the previous turn, making real OpenAI calls
    (openai-v2 instrumentation, messages on the spans) to fakellm."""

    def __init__(self, app: App, base_url: str) -> None:
        import openai

        self.app = app
        self.client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        self.history: dict[str | None, list[dict]] = {None: []}  # turn id -> messages after

    def request(self, text: str, previous: str | None, thread_id: str | None = None) -> str:
        messages = [*self.history[previous], {"role": "user", "content": text}]
        block = thread(thread_id) if thread_id else thread(previous_turn_id=previous)
        with block as t, self.app.tracer.start_as_current_span("request"):
            reply = self.client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        self.history[t.last_turn_id] = [
            *messages,
            {"role": "assistant", "content": reply.choices[0].message.content},
        ]
        return t.last_turn_id


@pytest.fixture
def instrumented(monkeypatch):
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    from otel_threads.testing.fakellm import FakeLLM

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    app = App()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=app.provider)
    with FakeLLM(replies=["Hello!", "Sunny.", "Rainy.", "You're welcome."]) as llm:
        try:
            yield Chat(app, llm.base_url)
        finally:
            instrumentor.uninstrument()


def transcript(detail) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in detail.transcript]


def test_a_regenerate_is_a_fork_and_the_transcript_follows_the_newest_branch(
    collector, instrumented
):
    from otel_threads import ThreadsClient

    chat = instrumented
    first = chat.request("hi", None, thread_id="chat-f")
    second = chat.request("weather?", first)
    again = chat.request("weather?", first)  # "regenerate": it answers the same turn
    chat.app.send(collector)
    assert sql(
        collector,
        "SELECT thread_id, parent_turn_id, child_count, child_turn_ids, "
        "current_child_turn_id FROM forks",
    ) == [("chat-f", first, 2, [second, again], again)]
    assert sql(collector, "SELECT turn_count, fork_count, last_output FROM threads") == [
        (3, 1, "Rainy.")
    ]
    client = ThreadsClient(collector.endpoints.api)  # the HTTP API; the file is held
    detail = client.thread("chat-f")
    assert detail.branch == [first, again] and detail.through_turn is None
    assert [(t.turn_id, t.on_current_branch) for t in detail.turns] == [
        (first, True),
        (second, False),
        (again, True),
    ]
    assert transcript(detail) == [
        ("user", "hi"),
        ("assistant", "Hello!"),
        ("user", "weather?"),
        ("assistant", "Rainy."),
    ]
    assert [m.seq for m in detail.transcript] == [1, 2, 3, 4]
    original = client.thread("chat-f", through_turn=second)
    assert original.branch == [first, second] and original.through_turn == second
    assert transcript(original) == [
        ("user", "hi"),
        ("assistant", "Hello!"),
        ("user", "weather?"),
        ("assistant", "Sunny."),
    ]
    assert original.forks == detail.forks and len(detail.forks) == 1
    # the user goes back to the first answer and goes on from there: that branch is
    # the newest now, and the branch through the regenerated turn is still there
    chat.request("thanks", second)
    chat.app.send(collector)  # all spans again: the redelivered ones change nothing
    now = client.thread("chat-f")
    assert transcript(now)[-3:] == [
        ("assistant", "Sunny."),
        ("user", "thanks"),
        ("assistant", "You're welcome."),
    ]
    assert transcript(client.thread("chat-f", through_turn=again))[-1] == ("assistant", "Rainy.")
    with pytest.raises(ValueError, match="not a turn of this thread"):
        client.thread("chat-f", through_turn="00000000000000ff")


def test_on_fork_reject_refuses_the_forking_turn_and_stores_the_rest(tmp_path, instrumented):
    c = start(tmp_path, on_fork="reject")
    try:
        chat, app = instrumented, instrumented.app
        first = chat.request("hi", None, thread_id="chat-r")
        second = chat.request("weather?", first)
        app.send(c)
        sent = len(app.spans())
        again = chat.request("weather?", first)  # regenerate: 2 spans (request, LLM call)
        with thread("other"), app.tracer.start_as_current_span("unrelated"):
            pass
        response = app.export(c, app.spans()[sent:])  # one request holds both
        assert response.partial_success.rejected_spans == 2
        assert (
            f"turn {again} names previous turn {first}, which turn {second} already answers"
        ) in response.partial_success.error_message
        assert sql(
            c, "SELECT thread_id, turn_count, fork_count FROM threads ORDER BY thread_id"
        ) == [("chat-r", 2, 0), ("other", 1, 0)]
        assert sql(c, "SELECT turn_id, previous_turn_id, answered_by FROM rejected_turns") == [
            (again, first, second)
        ]
        # the LLM call of the next regenerate ends, and is exported, before its turn:
        # stored, then left out of the thread once its turn is refused
        sent = len(app.spans())
        third = chat.request("weather?", first)
        call, request = app.spans()[sent:]
        assert app.export(c, [call]).partial_success.rejected_spans == 0
        assert app.export(c, [request]).partial_success.rejected_spans == 1
        assert sql(
            c,
            "SELECT thread_id, turn_id, refused FROM span_threads WHERE span_id = ?",
            call.context.span_id.to_bytes(8, "big").hex(),
        ) == [(None, None, True)]
        again_call = app.export(c, [call])  # a span of a refused turn is refused from now on
        assert again_call.partial_success.rejected_spans == 1
        assert third in again_call.partial_success.error_message
        detail = sql(
            c, "SELECT turn_count, fork_count, last_output FROM threads WHERE thread_id = 'chat-r'"
        )
        assert detail == [(2, 0, "Sunny.")]
    finally:
        c.stop()


def bounded(c: Collector, query: str) -> list[tuple]:
    """Run a query that must finish: interrupted (and failed) after 20 s."""
    import threading

    assert c.store.sync(30), "derivation did not finish"
    with c.store.cursor() as cur:
        timer = threading.Timer(20, cur.interrupt)
        timer.start()
        try:
            return cur.execute(query).fetchall()
        finally:
            timer.cancel()


def test_cycles_and_self_links_are_reported_and_hang_nothing(collector):
    from click.testing import CliRunner

    from otel_threads import ThreadsClient
    from otel_threads.cli import main as cli

    app = App()
    # without a thread id: a self-link, and two turns that name each other
    turn(app, "self", previous=sid(1), children=0)  # span 1 names itself
    turn(app, "ping", previous=sid(3), children=0)  # 2 names 3
    turn(app, "pong", previous=sid(2), children=0)  # 3 names 2
    turn(app, "after-pong", previous=sid(3), children=0)  # 4 names 3: behind the cycle
    # in threads: a self-link; two turns naming each other between ordinary turns
    turn(app, "loop", previous=sid(5), thread_id="loop-1", children=0)  # 5
    turn(app, "a0", thread_id="loop-2", children=0)  # 6
    turn(app, "a1", previous=sid(8), thread_id="loop-2", children=0)  # 7 names 8
    turn(app, "a2", previous=sid(7), thread_id="loop-2", children=0)  # 8 names 7
    turn(app, "a3", thread_id="loop-2", children=0)  # 9
    app.send(collector)
    assert bounded(
        collector, "SELECT turn_id, status, waiting_for FROM unresolved_turns ORDER BY turn_id"
    ) == [
        (sid(1), "cycle", None),
        (sid(2), "cycle", None),
        (sid(3), "cycle", None),
        (sid(4), "cycle", None),
    ]
    assert bounded(
        collector,
        "SELECT thread_id, turn_id, parent_turn_id, link_status, "
        "on_current_branch FROM turns ORDER BY thread_id, turn_index",
    ) == [
        ("loop-1", sid(5), None, "cycle", True),
        ("loop-2", sid(6), None, None, True),
        ("loop-2", sid(7), sid(6), "cycle", True),
        ("loop-2", sid(8), sid(7), "cycle", True),
        ("loop-2", sid(9), sid(8), None, True),
    ]
    assert bounded(
        collector,
        "SELECT thread_id, turn_count, fork_count, cycle_turn_count "
        "FROM threads ORDER BY thread_id",
    ) == [("loop-1", 1, 0, 1), ("loop-2", 4, 0, 2)]
    assert bounded(collector, "FROM forks") == []
    for view in ("span_threads", "turns", "transcript", "threads"):
        assert bounded(collector, kept_sql(view)) == bounded(
            collector, f"SELECT * FROM derive_{view} ORDER BY ALL"
        ), view
    client = ThreadsClient(collector.endpoints.api)
    assert client.thread("loop-2", through_turn=sid(7)).branch == [sid(6), sid(7), sid(8), sid(9)]
    out = CliRunner().invoke(cli, ["show", "loop-2", "--url", collector.endpoints.api])
    assert out.exit_code == 0, out.output
    assert (
        f"warning: turn 2 ({sid(7)}) names previous turn {sid(8)}, and its links loop (bad data)"
    ) in out.output


def test_the_linked_turns_example_regenerates_into_a_fork_that_show_marks(collector, tmp_path):
    from click.testing import CliRunner

    from otel_threads.cli import main as cli

    out = run_example(collector, "--state", str(tmp_path / "unused.json"))
    thread_id = out.split("thread id: ", 1)[1].split()[0]
    turns = sql(
        collector,
        "SELECT turn_id, previous_turn_id, on_current_branch FROM turns "
        "WHERE thread_id = ? ORDER BY turn_index",
        thread_id,
    )
    (t1, _, _), (t2, p2, b2), (t3, p3, b3), (t4, p4, b4) = turns
    assert (p2, p3, p4) == (t1, t2, t2) and (b2, b3, b4) == (True, False, True)
    assert sql(collector, "SELECT fork_count, turn_count FROM threads") == [(1, 4)]
    shown = CliRunner().invoke(cli, ["show", thread_id, "--url", collector.endpoints.api])
    assert shown.exit_code == 0, shown.output
    assert f"fork after turn 2 ({t2}): 2 answers" in shown.output
    assert f"otel-threads show {thread_id} --through {t3}\n" in shown.output
    assert f"otel-threads show {thread_id} --through {t4}  ← shown" in shown.output
    assert "The Azulejo museum" in shown.output and "Gulbenkian" not in shown.output
    through = CliRunner().invoke(
        cli, ["show", thread_id, "--through", t3, "--url", collector.endpoints.api]
    )
    assert through.exit_code == 0, through.output
    assert "the branch through turn 3: turns 1, 2, 3" in through.output
    assert "Gulbenkian" in through.output and "Azulejo" not in through.output
    bad = CliRunner().invoke(
        cli, ["show", thread_id, "--through", "nope", "--url", collector.endpoints.api]
    )
    assert bad.exit_code != 0 and "not a turn of this thread" in bad.output


def test_bad_fork_policy_and_bad_detail_parameters_get_clear_errors(collector):
    import urllib.error
    import urllib.request

    from otel_threads.collector.config import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"--on-fork \(from OTEL_THREADS_ON_FORK\): must be "
        "one of allow, reject, got 'maybe'",
    ):
        Config.load({}, env={"OTEL_THREADS_ON_FORK": "maybe"})
    assert Config.load({"on_fork": "REJECT"}, env={}).on_fork == "reject"
    app = App()
    turn(app, "ask", thread_id="t")
    app.send(collector)
    sql(collector, "SELECT 1")
    for query, status, message in [
        ("?through_turn=zz", 400, "not a turn of this thread"),
        ("?through=x", 400, "unknown parameter(s) ['through']"),
    ]:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{collector.endpoints.api}/threads/t{query}", timeout=10)
        with err.value as answer:
            assert answer.code == status
            assert message in json.loads(answer.read())["error"]


def test_a_link_outside_the_thread_is_missing_and_the_turn_keeps_its_place(collector):
    app = App()
    other = turn(app, "elsewhere", thread_id="t-1", children=0)  # 1
    first = turn(app, "ask-1", thread_id="t-2", children=0)  # 2
    linked = turn(app, "ask-2", other, thread_id="t-2", children=0)  # 3 names t-1's turn
    ahead = turn(app, "ask-3", "00000000000000ff", thread_id="t-2", children=0)  # never comes
    app.send(collector)
    assert sql(
        collector,
        "SELECT turn_id, previous_turn_id, parent_turn_id, link_status, "
        "on_current_branch FROM turns WHERE thread_id = 't-2' "
        "ORDER BY turn_index",
    ) == [
        (first, None, None, None, True),
        (linked, other, first, "missing", True),
        (ahead, "00000000000000ff", linked, "missing", True),
    ]
    assert sql(collector, "SELECT thread_id, fork_count FROM threads ORDER BY 1") == [
        ("t-1", 0),
        ("t-2", 0),
    ]
    assert sql(collector, "FROM unresolved_turns") == []  # they have a thread id


@pytest.mark.parametrize("seed", range(4))
def test_kept_rows_equal_a_derivation_from_scratch_whatever_the_arrival_order(collector, seed):
    """Linked chains (with and without thread ids), a fork, a self-link: delivered span
    by span in a random order, the kept rows match a derivation from scratch each time."""
    import random

    first = 100 * (seed + 1)
    app = App(first=first)
    a1 = turn(app, "a1", thread_id="A")
    a2 = turn(app, "a2", a1)
    turn(app, "a3", a2)
    turn(app, "a3-again", a2)  # a fork, and no thread id anywhere after a1
    b1 = turn(app, "b1", thread_id="B", children=0)
    turn(app, "b2", b1, thread_id="B", children=2)
    loop = turn(app, "loop", sid(first + 12), children=0)  # the 13th span names itself
    assert loop == sid(first + 12)
    spans = app.spans()
    random.Random(seed).shuffle(spans)
    for i in range(0, len(spans), 3):
        assert app.export(collector, spans[i : i + 3]).partial_success.rejected_spans == 0
        for view in KEPT_VIEWS:
            assert sql(collector, kept_sql(view)) == sql(
                collector, f"SELECT * FROM derive_{view} ORDER BY ALL"
            ), (view, i)
        assert sql(collector, UNCOVERED_TURNS) == [], i
    assert sql(
        collector, "SELECT thread_id, turn_count, fork_count FROM threads ORDER BY thread_id"
    ) == [("A", 4, 1), ("B", 2, 0)]
    assert sql(collector, "SELECT turn_id, status FROM unresolved_turns") == [(loop, "cycle")]
    # the branch the SQL keeps current is the branch through the newest turn and through
    # the first; the table macro branch_through walks as a plain walk of the tree does
    from otel_threads.query import branch_through, query_thread

    with collector.store.cursor() as cur:
        for thread_id in ("A", "B"):
            detail = query_thread(cur, thread_id)
            by_index = sorted(detail.turns, key=lambda t: t.turn_index)
            assert detail.branch == branch_through(cur, thread_id, by_index[-1].turn_id)
            assert detail.branch == branch_through(cur, thread_id, by_index[0].turn_id)
            for t in detail.turns:
                assert branch_through(cur, thread_id, t.turn_id) == _walk(detail.turns, t.turn_id)
        with pytest.raises(ValueError, match="not a turn of this thread"):
            branch_through(cur, "A", by_index[0].turn_id)


def _walk(turns: list, turn_id: str) -> list[str]:
    """The branch through ``turn_id`` walked in Python: the newest turn of its subtree,
    then up to the root (the reference the SQL macro is checked against)."""
    by_id = {t.turn_id: t for t in turns}
    children: dict[str, list[str]] = {}
    for t in turns:
        children.setdefault(t.parent_turn_id, []).append(t.turn_id)
    newest, stack = turn_id, [turn_id]
    while stack:
        for child in children.get(stack.pop(), ()):
            stack.append(child)
            if by_id[child].turn_index > by_id[newest].turn_index:
                newest = child
    path, at = [], newest
    while at in by_id:
        path.append(at)
        at = by_id[at].parent_turn_id
    return path[::-1]
