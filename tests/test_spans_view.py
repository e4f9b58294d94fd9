"""`spans` gives each span its resolved thread and turn (CONTRACT.md section 2).

A plain DuckDB user asks `FROM spans WHERE thread_id = ?` and gets every span of the
thread, children included, with the turn each belongs to; and a store written by an
earlier version (where `spans` was the raw table) opens into the same shape, data kept.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import pytest
from stored_app import App, sid

from otel_threads import thread
from otel_threads.collector.testing import running, sql
from otel_threads.store import connect

ANY = ("127.0.0.1", 0)


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "s.duckdb", grpc=ANY, http=None, api=None) as c:
        yield c


def test_spans_answer_where_thread_id_with_every_span_of_the_thread(collector):
    app = App()
    tr = app.tracer
    with thread("t1"):
        with tr.start_as_current_span("turn-a"):  # 1
            with tr.start_as_current_span("llm"):  # 2
                with tr.start_as_current_span("http"):  # 3
                    pass
        with tr.start_as_current_span("turn-b"):  # 4
            pass
    with tr.start_as_current_span("outside"):  # 5
        pass
    other = App(first=100, marks=False)  # a producer that puts the id on its LLM span only
    with other.tracer.start_as_current_span("request"):  # 100
        with other.tracer.start_as_current_span("chat", attributes={"session.id": "s9"}):  # 101
            pass
    app.send(collector)
    other.send(collector)
    assert sql(
        collector,
        "SELECT span_id, name, turn_id, is_turn FROM spans WHERE thread_id = ? ORDER BY span_id",
        "t1",
    ) == [
        (sid(1), "turn-a", sid(1), True),
        (sid(2), "llm", sid(1), False),
        (sid(3), "http", sid(1), False),
        (sid(4), "turn-b", sid(4), True),
    ]
    assert sql(
        collector,
        "SELECT name, turn_id, is_turn FROM spans WHERE thread_id = 's9' ORDER BY span_id",
    ) == [("request", sid(100), True), ("chat", sid(100), False)]
    assert sql(
        collector, "SELECT thread_id, turn_id, is_turn FROM spans WHERE name = 'outside'"
    ) == [(None, None, False)]
    # the same as span_threads, span for span
    assert sql(
        collector,
        """
        SELECT count(*) FROM spans s FULL JOIN span_threads t USING (trace_id, span_id)
        WHERE s.thread_id IS DISTINCT FROM t.thread_id OR s.turn_id IS DISTINCT FROM t.turn_id
           OR s.is_turn IS DISTINCT FROM t.is_turn""",
    ) == [(0,)]


def test_a_store_of_the_earlier_schema_opens_with_spans_as_a_view(tmp_path):
    """Migration 4 renames the raw table; the spans stored before are all there."""
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute(
        "CREATE TABLE otel_threads_migrations (version INTEGER PRIMARY KEY, "
        "name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP)"
    )
    migrations = resources.files("otel_threads").joinpath("migrations")
    for version, name in ((1, "raw_tables"), (2, "derive_queue"), (3, "linked_turns")):
        con.execute(migrations.joinpath(f"{version:04d}_{name}.sql").read_text())
        con.execute(
            "INSERT INTO otel_threads_migrations (version, name) VALUES (?, ?)", [version, name]
        )
    for i, (parent, attrs) in enumerate(
        [(None, '{"gen_ai.conversation.id":"old"}'), (1, "{}")], start=1
    ):
        con.execute(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, name, start_time, "
            "start_time_unix_nano, attributes, thread_id, ingest_seq, received_at) VALUES "
            "(?, ?, ?, ?, to_timestamp(?)::TIMESTAMP, ?, ?, ?, ?, now()::TIMESTAMP)",
            [
                "ab" * 16,
                sid(i),
                sid(parent) if parent else None,
                f"s{i}",
                1_700_000_000 + i,
                (1_700_000_000 + i) * 10**9,
                attrs,
                "old" if i == 1 else None,
                i,
            ],
        )
    con.execute("INSERT INTO derive_queue (trace_id) VALUES (?)", ["ab" * 16])
    con.close()

    con = connect(path)  # migrates, creates the views, derives
    try:
        assert con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = 'spans'"
        ).fetchall() == [("VIEW",)]
        assert con.execute(
            "SELECT name, thread_id, turn_id FROM spans ORDER BY span_id"
        ).fetchall() == [("s1", "old", sid(1)), ("s2", "old", sid(1))]
        assert con.execute("SELECT thread_id, turn_count, span_count FROM threads").fetchall() == [
            ("old", 1, 2)
        ]
        assert con.execute(
            "SELECT count(*) FROM duckdb_indexes() WHERE table_name = 'spans_raw'"
        ).fetchall() == [(1,)]
        # a span not derived yet shows what its own attributes say
        con.execute(
            "INSERT INTO spans_raw (trace_id, span_id, name, start_time_unix_nano, "
            "thread_id, turn_id, is_turn, ingest_seq, received_at) VALUES "
            "(?, ?, 'new', 0, 'own', 'tt', true, 9, now()::TIMESTAMP)",
            ["cd" * 16, sid(9)],
        )
        assert con.execute(
            "SELECT name, thread_id, turn_id, is_turn FROM spans WHERE thread_id = 'own'"
        ).fetchall() == [("new", "own", "tt", True)]
        assert con.execute("SELECT count(*) FROM spans").fetchall() == [(3,)]
    finally:
        con.close()
