"""The threads, turns and span_threads views: semantics, and derived == from scratch.

Spans come from a real TracerProvider with ThreadSpanProcessor (or without it, for
other producers), go through the real OTLP/gRPC exporter to a real collector, and
the views are read back with SQL.
"""

from __future__ import annotations

import pytest
from opentelemetry.trace import Status, StatusCode
from stored_app import KEPT_VIEWS, App, kept_sql, sid

from otel_threads import thread
from otel_threads.collector import Collector, Config
from otel_threads.collector.testing import running, sql

ANY = ("127.0.0.1", 0)


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "v.duckdb", grpc=ANY, http=None, api=ANY) as c:
        yield c


def test_turns_and_threads_from_marked_spans(collector):
    app = App()
    tr = app.tracer
    with thread("t1"):
        with tr.start_as_current_span("turn-a"):  # 1
            with tr.start_as_current_span("llm"):  # 2
                pass
        with tr.start_as_current_span("turn-b") as b:  # 3
            b.set_status(Status(StatusCode.ERROR, "boom"))
    with thread("t2"), tr.start_as_current_span("only"):  # 4
        pass
    with tr.start_as_current_span("no-thread"):  # 5
        pass
    app.send(collector)
    assert sql(
        collector,
        "SELECT thread_id, turn_id, turn_index, name, span_count, "
        "status_code, has_error, is_running FROM turns ORDER BY turn_id",
    ) == [
        ("t1", sid(1), 1, "turn-a", 2, "UNSET", False, False),
        ("t1", sid(3), 2, "turn-b", 1, "ERROR", True, False),
        ("t2", sid(4), 1, "only", 1, "UNSET", False, False),
    ]
    assert sql(
        collector,
        "SELECT thread_id, turn_count, first_turn_id, last_turn_id, span_count,"
        " error_turn_count, running_turn_count, service_name "
        "FROM threads ORDER BY thread_id",
    ) == [("t1", 2, sid(1), sid(3), 3, 1, 0, "app"), ("t2", 1, sid(4), sid(4), 1, 0, 0, "app")]
    (last, start, end_b) = sql(
        collector,
        """
        SELECT th.last_updated, th.start_time, tu.end_time FROM threads th
        JOIN turns tu ON tu.thread_id = th.thread_id AND tu.turn_id = th.last_turn_id
        WHERE th.thread_id = 't1'""",
    )[0]
    assert last == end_b and start < last


def test_a_turn_still_running_counts_and_keeps_its_thread_listed(collector):
    app = App()
    tr = app.tracer
    with thread("t"), tr.start_as_current_span("turn"):  # 1, exported later
        with tr.start_as_current_span("child-a"):  # 2
            pass
        with tr.start_as_current_span("child-b"):  # 3
            pass
    app.send(collector, ["child-a", "child-b"])  # the turn span has not ended "yet"
    assert sql(
        collector, "SELECT turn_id, span_id, is_running, span_count, end_time FROM turns"
    ) == [(sid(1), None, True, 2, None)]
    (row,) = sql(
        collector,
        "SELECT turn_count, running_turn_count, last_updated, start_time "
        "FROM threads WHERE thread_id = 't'",
    )
    assert row[:2] == (1, 1) and row[2] == row[3]  # last_updated: the running turn's start
    assert sql(collector, "SELECT is_turn, count(*) FROM span_threads GROUP BY ALL") == [(False, 2)]
    app.send(collector, ["turn"])  # it arrives: the same turn, now finished
    assert sql(collector, "SELECT turn_id, span_id, is_running, span_count FROM turns") == [
        (sid(1), sid(1), False, 3)
    ]


def test_redelivered_spans_never_count_twice(collector):
    app = App()
    with thread("t"), app.tracer.start_as_current_span("turn"):
        with app.tracer.start_as_current_span("child"):
            pass
    for _ in range(3):
        app.send(collector)
    assert sql(collector, "SELECT turn_count, span_count FROM threads") == [(1, 2)]


def test_producers_without_marks_get_turns_from_the_stored_tree(collector):
    app = App(first=100, marks=False, service="other")
    tr = app.tracer
    for i in range(2):  # two requests; the session id is on the LLM span only
        with tr.start_as_current_span(f"request-{i}"):
            with tr.start_as_current_span("llm", attributes={"session.id": "s1"}):
                pass
            with tr.start_as_current_span("tool"):
                pass
    weave = {"wandb.thread_id": "w", "wandb.is_turn": False}
    with tr.start_as_current_span("ws", attributes=weave):
        with tr.start_as_current_span("turn-by-wandb", attributes={"wandb.is_turn": True}):
            pass
    app.send(collector)
    assert sql(
        collector, "SELECT thread_id, name, span_count FROM turns ORDER BY thread_id, turn_index"
    ) == [("s1", "request-0", 3), ("s1", "request-1", 3), ("w", "turn-by-wandb", 1)]


def test_a_called_service_continues_the_callers_turn_in_the_stored_tree(collector):
    front = App(first=1, service="front")
    back = App(first=1000, service="back")
    from opentelemetry import context, propagate

    with thread("t"), front.tracer.start_as_current_span("turn"):  # 1
        with front.tracer.start_as_current_span("call-back"):  # 2
            headers: dict[str, str] = {}
            propagate.inject(headers)
    token = context.attach(propagate.extract(headers, context=context.Context()))
    try:
        with back.tracer.start_as_current_span("server"):
            with back.tracer.start_as_current_span("db"):
                pass
    finally:
        context.detach(token)
    back.send(collector)  # the called service's spans may well arrive first
    front.send(collector)
    assert sql(
        collector,
        "SELECT s.service_name, s.name, t.thread_id, t.turn_id, t.is_turn "
        "FROM span_threads t JOIN spans s USING (trace_id, span_id) "
        "ORDER BY s.start_time_unix_nano",
    ) == [
        ("front", "turn", "t", sid(1), True),
        ("front", "call-back", "t", sid(1), False),
        ("back", "server", "t", sid(1), False),
        ("back", "db", "t", sid(1), False),
    ]
    assert sql(collector, "SELECT turn_count, span_count FROM threads") == [(1, 4)]


EVALUATION = "gen_ai.evaluation.result"


@pytest.mark.parametrize("view", KEPT_VIEWS)
def test_the_kept_rows_equal_a_derivation_from_scratch(collector, view):
    """Deliver in an awkward order (children first, a late parent, redeliveries, two
    services), then compare each view with its derive_* view evaluated over everything."""
    a, b = App(first=1), App(first=500, marks=False, service="b")
    for i in range(3):
        with thread(f"thread-{i % 2}"), a.tracer.start_as_current_span(f"turn-{i}"):
            call = {"gen_ai.operation.name": "chat", "gen_ai.response.id": f"r{i}"}
            with a.tracer.start_as_current_span(f"step-{i}", attributes=call) as step:
                # an evaluation about a child that arrives before its turn (annotations)
                step.add_event(EVALUATION, {"gen_ai.evaluation.name": "ok", "x": i})
    with b.tracer.start_as_current_span("req", attributes={"session.id": "thread-1"}):
        with b.tracer.start_as_current_span("inner"):
            pass
    a.send(collector, ["step-0", "step-1", "step-2"])
    b.send(collector, ["inner"])
    a.send(collector, ["turn-1"])
    b.send(collector)
    a.send(collector)
    kept = sql(collector, kept_sql(view))
    scratch = sql(collector, f"SELECT * FROM derive_{view} ORDER BY ALL")
    assert kept == scratch
    assert view in ("transcript", "message_keys") or kept


def one_turn_store(path: str) -> None:
    """A store holding thread "t" of one turn, written by a collector that stopped."""
    c = Collector(Config(parse_workers=0, db=path, grpc=ANY, http=None, api=None))
    c.start()
    app = App()
    with thread("t"), app.tracer.start_as_current_span("turn"):
        pass
    app.send(c)
    c.stop()


def test_traces_left_queued_by_a_stopped_writer_are_derived_at_the_next_start(tmp_path):
    import duckdb

    from otel_threads.store.writer import Writer

    path = str(tmp_path / "left.duckdb")
    one_turn_store(path)
    with duckdb.connect(path) as con:  # as if the process died before deriving these
        con.execute("DELETE FROM turns_mat")
        con.execute("DELETE FROM threads_mat")
        con.execute("INSERT INTO derive_queue (trace_id) SELECT DISTINCT trace_id FROM spans")
    writer = Writer(path).start()
    try:
        assert writer.store.sync(30)
        with writer.store.cursor() as cur:
            assert cur.execute("SELECT thread_id, turn_count FROM threads").fetchall() == [("t", 1)]
            assert cur.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
    finally:
        writer.close()


def test_thread_statistics_from_llm_calls(collector):
    import json

    app = App()

    def chat(question: str, answer: str, tokens: tuple[int, int]) -> dict:
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024",
            "gen_ai.usage.input_tokens": tokens[0],
            "gen_ai.usage.output_tokens": tokens[1],
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": question}]}]
            ),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "finish_reason": "stop",
                        "parts": [{"type": "text", "content": answer}],
                    }
                ]
            ),
        }

    with thread("t"):
        with app.tracer.start_as_current_span("turn-1"):
            with app.tracer.start_as_current_span(
                "chat gpt-4o-mini", attributes=chat("Hi?", "Hello.", (10, 3))
            ):
                pass
        with app.tracer.start_as_current_span("turn-2"):
            with app.tracer.start_as_current_span(
                "chat gpt-4o-mini", attributes=chat("Bye?", "Goodbye.", (20, 4))
            ):
                pass
    app.send(collector)
    assert sql(
        collector,
        "SELECT turn_index, llm_call_count, input_tokens, output_tokens "
        "FROM turns ORDER BY turn_index",
    ) == [(1, 1, 10, 3), (2, 1, 20, 4)]
    assert sql(
        collector,
        "SELECT llm_call_count, input_tokens, output_tokens, first_input, "
        "last_output, models FROM threads",
    ) == [(2, 30, 7, "Hi?", "Goodbye.", ["gpt-4o-mini-2024"])]


def test_a_store_left_by_an_earlier_version_is_rederived_with_this_versions_views(tmp_path):
    """Upgrading: the derived tables are rebuilt only from views this version created,
    never from an earlier version's view whose new definition did not bind yet."""
    import duckdb

    from otel_threads.store import connect

    path = str(tmp_path / "earlier.duckdb")
    one_turn_store(path)
    with duckdb.connect(path) as con:  # what an earlier version left: other definitions
        con.execute("UPDATE otel_threads_derived SET version = 'earlier'")
        con.execute("CREATE OR REPLACE VIEW turns AS SELECT thread_id, turn_id FROM turns_mat")
        con.execute("CREATE OR REPLACE VIEW derive_transcript AS SELECT 1 AS stale")
    connect(path).close()
    with duckdb.connect(path, read_only=True) as con:
        for view in KEPT_VIEWS:
            assert (
                con.execute(kept_sql(view)).fetchall()
                == con.execute(f"SELECT * FROM derive_{view} ORDER BY ALL").fetchall()
            ), view
        names = [r[0] for r in con.execute("DESCRIBE transcript_mat").fetchall()]
        assert "on_current_branch" in names and "stale" not in names
        assert con.execute("SELECT thread_id, turn_count FROM threads").fetchall() == [("t", 1)]


def test_derived_tables_are_stale_only_when_sql_they_read_changes():
    from otel_threads.store.sqlfiles import DERIVED, sql_files

    reads = {table: sql_files().closure(view) for table, view, _ in DERIVED}
    assert reads["span_threads_mat"] == {"derive_span_threads"}
    assert {"derive_span_threads", "span_threads", "llm_calls", "turn_facts"} <= reads["turns_mat"]
    assert {"derive_span_threads", "messages"} <= reads["message_keys_mat"]
    assert {"derive_turns", "turns", "messages", "derive_message_keys", "transcript_rows"} <= (
        reads["transcript_mat"]
    )
    assert {"derive_transcript", "transcript", "derive_turns"} <= reads["threads_mat"]
    for views in reads.values():  # views nothing derives from never force a rebuild
        assert not views & {"forks", "unresolved_turns", "threads"}


@pytest.mark.fresh_open
def test_views_are_created_once_each_after_what_they_read(tmp_path):
    """The order comes from DuckDB's parser (not retries); a file that has this
    version's views opens without creating them again."""
    import duckdb

    from otel_threads.store import apply_views, connect
    from otel_threads.store.sqlfiles import sql_files

    files = sql_files()
    assert sorted(files.order) == sorted(files.texts)
    position = {name: i for i, name in enumerate(files.order)}
    for name, names in files.names.items():
        assert all(position[n] < position[name] for n in names if n in position), name
    assert files.names["turns"] == {"turns_mat"} and files.names["forks"] == {"turns"}
    assert files.reads["turns"] == {"derive_turns"}  # a derived table stands for its view
    path = str(tmp_path / "x.duckdb")
    with connect(path) as con:
        assert apply_views(con) == []  # connect created them; nothing changed since
        con.execute("UPDATE otel_threads_derived SET version = 'earlier' WHERE name = '(views)'")
        assert apply_views(con) == files.order
        con.execute("DROP VIEW forks")
        assert apply_views(con) == files.order  # one missing: created again
    with duckdb.connect(path) as con:
        assert con.execute("SELECT count(*) FROM forks").fetchall() == [(0,)]


def test_the_derived_tables_migrations_create_have_their_views_columns(tmp_path):
    """Migrations 0007, 0010 write each derived table's columns out; they must be the
    columns (names, order and types) of the view that derives its rows, and of a table of
    rows per trace, then the number of their trace (migration 0018)."""
    from otel_threads.store import connect
    from otel_threads.store.sqlfiles import DERIVED

    number = [("trace_n", "BIGINT", "YES", None, None, None)]
    with connect(str(tmp_path / "x.duckdb")) as con:
        for table, view, key in DERIVED:
            assert con.execute(f"DESCRIBE {table}").fetchall() == con.execute(
                f"DESCRIBE SELECT * FROM {view}"
            ).fetchall() + (number if key == "trace_id" else []), table


def test_only_the_store_and_its_public_views_read_the_derived_tables():
    """The views are the one place threads are derived: readers (the query layer, the
    CLI, the collector, the other views) read views, never a derived table."""
    import re
    from pathlib import Path

    import otel_threads
    from otel_threads.store.sqlfiles import DERIVED, sql_files

    tables = {t for t, _, _ in DERIVED}
    # (and derive_thread_tails, which the store's derivation alone reads: it takes the
    # trace numbers of message_keys_mat, which the public view leaves out)
    assert {name for name, names in sql_files().names.items() if names & tables} == {
        "derive_thread_tails",
        "span_threads",
        "message_keys",
        "turns",
        "transcript",
        "threads",
        "turn_io",
        "transcript_branches",
        "thread_attributes",
        "annotations",
    }
    root = Path(otel_threads.__file__).parent
    readers = [p for p in root.rglob("*.py") if p.parent.name != "store"]
    assert len(readers) > 20
    for path in readers:
        assert not re.search(r"\b\w+_mat\b", path.read_text()), path
