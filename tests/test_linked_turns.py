"""Linked turns and forks: previous_turn_id end to end (issue 5).

Spans come from real TracerProviders with ThreadSpanProcessor, sequential ids (so a
test can name a turn before it exists), and reach a real collector over OTLP/gRPC in
the order each test chooses.
"""

from __future__ import annotations

import pytest
from stored_app import App, sid, sql

from collector import Collector, Config
from otel_threads import thread

ANY = ("127.0.0.1", 0)


def start(tmp_path, **config) -> Collector:
    c = Collector(Config(db=str(tmp_path / "linked.duckdb"), grpc=ANY, http=None, api=ANY,
                         **config))
    c.start()
    return c


@pytest.fixture
def collector(tmp_path):
    c = start(tmp_path)
    yield c
    c.stop()


def turn(app: App, name: str, previous: str | None = None, thread_id: str | None = None,
         children: int = 1) -> str:
    """One request: a turn (with children) in `thread(thread_id)` or, given only
    ``previous``, in a linked thread; returns the turn id the app stores."""
    block = thread(thread_id, previous_turn_id=previous) if thread_id else thread(
        previous_turn_id=previous)
    with block as t, app.tracer.start_as_current_span(name):
        for i in range(children):
            with app.tracer.start_as_current_span(f"{name}.step{i}"):
                pass
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
    assert sql(collector, "SELECT thread_id, turn_id, turn_index, previous_turn_id, "
                          "parent_turn_id, link_status, on_current_branch, span_count "
                          "FROM turns ORDER BY turn_index") == [
        ("chat-1", sid(1), 1, None, None, None, True, 1),
        ("chat-1", sid(2), 2, sid(1), sid(1), "linked", True, 2),
        ("chat-1", sid(4), 3, sid(2), sid(2), "linked", True, 2),
    ]
    # the spans carry no thread id: it comes along the links
    assert sql(collector, "SELECT count(*) FILTER (WHERE thread_from_link), count(*) "
                          "FROM span_threads WHERE thread_id = 'chat-1'") == [(4, 5)]
    assert sql(collector, "SELECT turn_count, fork_count, last_turn_id FROM threads") == [
        (3, 0, sid(4))]
    assert sql(collector, "FROM unresolved_turns") == []


def test_a_chain_whose_middle_turn_arrives_last(collector):
    app = App()
    first = turn(app, "ask-1", thread_id="chat-2")  # 1 (2)
    second = turn(app, "ask-2", first)  # 3 (4)
    third = turn(app, "ask-3", second)  # 5 (6)
    fourth = turn(app, "ask-4", third)  # 7 (8)
    app.send(collector, ["ask-1", "ask-1.step0", "ask-4", "ask-4.step0", "ask-3",
                         "ask-3.step0"])
    assert sql(collector, "SELECT turn_id FROM turns") == [(first,)]
    assert sql(collector, "SELECT turn_id, previous_turn_id, status, waiting_for, chain_length "
                          "FROM unresolved_turns ORDER BY turn_id") == [
        (third, second, "pending", second, 1),
        (fourth, third, "pending", second, 2),
    ]
    assert sql(collector, "SELECT count(*) FROM span_threads WHERE thread_id IS NULL") == [(4,)]
    app.send(collector, ["ask-2.step0"])  # the middle turn's child first: still waiting
    assert sql(collector, "SELECT count(*) FROM unresolved_turns") == [(2,)]
    app.send(collector, ["ask-2"])
    assert sql(collector, "SELECT turn_id, turn_index, link_status, span_count FROM turns "
                          "WHERE thread_id = 'chat-2' ORDER BY turn_index") == [
        (first, 1, None, 2), (second, 2, "linked", 2), (third, 3, "linked", 2),
        (fourth, 4, "linked", 2)]
    assert sql(collector, "SELECT count(*) FROM span_threads WHERE thread_id IS NULL") == [(0,)]
    assert sql(collector, "FROM unresolved_turns") == []
    for view in ("span_threads", "turns", "transcript", "threads"):  # kept == from scratch
        assert sql(collector, f"SELECT * FROM {view}_mat ORDER BY ALL") == sql(
            collector, f"SELECT * FROM derive_{view} ORDER BY ALL"), view
