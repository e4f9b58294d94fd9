"""Ending a thread (CONTRACT.md section 5): `ThreadContext.end()` and `thread(..., end=True)`
put ``otel_threads.thread_ended = true`` on one span of the thread, and the store shows
``threads.ended`` / ``ended_at`` / ``reopened_at`` and ``turns.ended_at``.

A real TracerProvider with ThreadSpanProcessor writes through the project's
DuckDBSpanExporter into a file in tmp_path (one provider per step: the exporter holds the
file while it lives), read back with SQL, ThreadsClient and the CLI; then the same over
real OTLP/gRPC into a collector.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from stored_app import App, sid

from otel_threads import ThreadFilter, ThreadsClient, ThreadSpanProcessor, ThreadsQueryReq, thread
from otel_threads.cli import main as cli
from otel_threads.collector.testing import running, sql
from otel_threads.exporter import DuckDBSpanExporter
from otel_threads.store import connect
from otel_threads.testing import SequentialIdGenerator

ENDED = "otel_threads.thread_ended"


@contextmanager
def app(path: Path, first: int):
    """A service writing into ``path``: span and trace ids from ``first``."""
    provider = TracerProvider(id_generator=SequentialIdGenerator(first, first_trace_id=first))
    provider.add_span_processor(ThreadSpanProcessor(tracer_provider=provider))
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(path)))
    try:
        yield provider.get_tracer("app")
    finally:
        provider.shutdown()


def rows(path: Path, query: str) -> list[tuple]:
    with connect(str(path), read_only=True) as con:
        return con.execute(query).fetchall()


def marked(path: Path) -> list[tuple]:
    """(span name, its turn) of every span that carries the end mark."""
    return rows(
        path,
        f"SELECT name, turn_id FROM spans WHERE attributes->>'$.\"{ENDED}\"' = 'true' "
        "ORDER BY start_time",
    )


def thread_row(path: Path, thread_id: str = "t") -> tuple:
    (row,) = rows(
        path,
        "SELECT turn_count, last_turn_id, ended, ended_at, reopened_at FROM threads "
        f"WHERE thread_id = '{thread_id}'",
    )
    return row


def span_time(path: Path, span_id: str, column: str = "end_time"):
    return rows(path, f"SELECT {column} FROM spans WHERE span_id = '{span_id}'")[0][0]


def test_end_inside_a_turn_marks_that_span_once(tmp_path):
    db = tmp_path / "s.duckdb"
    with app(db, 1) as tr, thread("t") as t:
        with tr.start_as_current_span("turn"):  # 1
            with tr.start_as_current_span("llm"):  # 2
                t.end()
                t.end()  # again, in the same turn: nothing more
            with tr.start_as_current_span("after"):  # 3
                t.end()
        t.end()  # after the turn: it is ended already, so no mark waits for a next span
        with tr.start_as_current_span("next-turn"):  # 4: a new turn, not marked
            pass
    assert marked(db) == [("llm", sid(1))]
    assert rows(db, "SELECT turn_id, ended_at FROM turns ORDER BY turn_index") == [
        (sid(1), span_time(db, sid(2))),
        (sid(4), None),
    ]
    # the turn that ended it is not the last: reopened by turn 4
    assert thread_row(db) == (2, sid(4), False, None, span_time(db, sid(4), "start_time"))


def test_end_after_the_turn_marks_the_next_span_of_the_thread_only(tmp_path):
    db = tmp_path / "s.duckdb"
    with app(db, 1) as tr:
        with thread("t") as t:
            with tr.start_as_current_span("turn-1"):  # 1
                pass
            t.end()  # no span of the thread is current: waits for the next one
            t.end()
        with tr.start_as_current_span("outside"):  # 2: in no thread, not marked
            pass
        with thread("other"), tr.start_as_current_span("other-turn"):  # 3
            pass
    assert marked(db) == []
    assert thread_row(db)[2:] == (False, None, None)
    with app(db, 10) as tr:
        with thread("t"):  # a later block of the same thread
            with tr.start_as_current_span("turn-2"):  # 10: the next span
                with tr.start_as_current_span("child"):  # 11
                    pass
            with tr.start_as_current_span("turn-3"):  # 12
                pass
    assert marked(db) == [("turn-2", sid(10))]
    assert thread_row(db) == (3, sid(12), False, None, span_time(db, sid(12), "start_time"))


def test_end_on_exit_marks_the_last_turn_with_a_marker_span_then_a_new_turn_reopens(tmp_path):
    db = tmp_path / "s.duckdb"
    client = ThreadsClient(str(db))
    with app(db, 1) as tr, thread("t", end=True):
        with tr.start_as_current_span("turn-1"):  # 1
            pass
        with tr.start_as_current_span("turn-2"):  # 2
            pass
    # the marker: span 3, a zero-length child of the last turn span, in that turn
    assert rows(
        db,
        "SELECT span_id, parent_span_id, turn_id, is_turn, start_time = end_time FROM spans "
        "WHERE name = 'otel_threads.thread_end'",
    ) == [(sid(3), sid(2), sid(2), False, True)]
    assert marked(db) == [("otel_threads.thread_end", sid(2))]
    ended_at = span_time(db, sid(3))
    assert thread_row(db) == (2, sid(2), True, ended_at, None)
    assert rows(db, "SELECT turn_index, span_count, ended_at FROM turns ORDER BY 1") == [
        (1, 1, None),
        (2, 2, ended_at),
    ]
    assert [t.thread_id for t in client.threads_query(ended_query(True)).threads] == ["t"]

    with app(db, 10) as tr, thread("t"), tr.start_as_current_span("turn-3"):  # 10
        pass
    reopened = span_time(db, sid(10), "start_time")
    assert thread_row(db) == (3, sid(10), False, None, reopened)
    detail = client.thread("t")
    assert (detail.thread.ended, detail.thread.reopened_at) == (False, reopened)
    assert [t.ended_at for t in detail.turns] == [None, ended_at, None]
    assert client.threads_query(ended_query(True)).threads == []
    shown = CliRunner().invoke(cli, ["show", "t", "--db", str(db)])
    assert "  ·  reopened " in shown.output.splitlines()[0], shown.output
    assert [t.thread_id for t in client.threads_query(ended_query(False)).threads] == ["t"]

    with app(db, 20) as tr, thread("t", end=True):  # ended again
        with tr.start_as_current_span("turn-4"):  # 20; the marker is 21
            pass
    assert thread_row(db) == (4, sid(20), True, span_time(db, sid(21)), None)
    listed = CliRunner().invoke(cli, ["threads", "--db", str(db), "--ended", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(t["thread_id"], t["ended"]) for t in json.loads(listed.output)["threads"]] == [
        ("t", True)
    ]
    listed = CliRunner().invoke(cli, ["threads", "--db", str(db), "--no-ended"])
    assert listed.exit_code == 0 and "(ended)" not in listed.output, listed.output
    assert "(ended)" in CliRunner().invoke(cli, ["threads", "--db", str(db)]).output
    shown = CliRunner().invoke(cli, ["show", "t", "--db", str(db)])
    assert "  ·  ended " in shown.output.splitlines()[0], shown.output


def ended_query(ended: bool) -> ThreadsQueryReq:
    return ThreadsQueryReq(filter=ThreadFilter(ended=ended))


def test_end_on_exit_marks_a_turn_span_still_running_and_ends_on_exceptions(tmp_path):
    db = tmp_path / "s.duckdb"
    with app(db, 1) as tr:
        with thread("running", end=True):
            span = tr.start_span("turn")  # 1: still running as the block closes
        span.end()
        with pytest.raises(ValueError), thread("failed", end=True):
            with tr.start_as_current_span("turn"):  # 2
                raise ValueError("boom")
    assert rows(db, "SELECT name, thread_id FROM spans ORDER BY span_id") == [
        ("turn", "running"),
        ("turn", "failed"),
        ("otel_threads.thread_end", "failed"),
    ]
    assert rows(db, "SELECT thread_id, turn_count, ended FROM threads ORDER BY 1") == [
        ("failed", 1, True),
        ("running", 1, True),
    ]


def test_end_on_exit_without_a_turn_marks_the_next_span_and_nothing_twice(tmp_path):
    db = tmp_path / "s.duckdb"
    with app(db, 1) as tr:
        with thread("t", end=True) as t:
            t.end()  # before any span: this and the exit wait for the same next span
        with thread(None, end=True) as nothing:
            nothing.end()  # no thread: nothing to end
            with tr.start_as_current_span("no-thread"):  # 1
                pass
        with thread("t"):
            with tr.start_as_current_span("turn-1"):  # 2: marked
                pass
            with tr.start_as_current_span("turn-2"):  # 3: not
                pass
    assert marked(db) == [("turn-1", sid(2))]
    assert thread_row(db)[:3] == (2, sid(3), False)


def test_any_producer_ends_a_thread_with_the_attribute_true_or_the_string_true(tmp_path):
    db = tmp_path / "s.duckdb"
    with app(db, 1) as tr:
        for thread_id, value in (("bool", True), ("text", "true"), ("no", "false")):
            with thread(thread_id), tr.start_as_current_span("turn", attributes={ENDED: value}):
                pass
    assert rows(db, "SELECT thread_id, ended FROM threads ORDER BY 1") == [
        ("bool", True),
        ("no", False),
        ("text", True),
    ]


def test_without_a_provider_for_the_marker_the_end_waits_for_the_next_span():
    """No ``tracer_provider`` and no global SDK provider (a fresh interpreter): the
    marker cannot be started, so the end goes on the thread's next span."""
    code = """
import json
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_threads import ThreadSpanProcessor, thread
provider = TracerProvider()
provider.add_span_processor(ThreadSpanProcessor())
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
tr = provider.get_tracer("app")
with thread("t", end=True), tr.start_as_current_span("turn-1"):
    pass
with thread("t"), tr.start_as_current_span("turn-2"):
    pass
print(json.dumps([[s.name, (s.attributes or {}).get("otel_threads.thread_ended")]
                  for s in memory.get_finished_spans()]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == [["turn-1", None], ["turn-2", True]]


def test_an_end_over_otlp_to_a_collector(tmp_path):
    with running(tmp_path / "c.duckdb", grpc=("127.0.0.1", 0), http=None, api=None) as c:
        service = App()
        with thread("t", end=True), service.tracer.start_as_current_span("turn"):  # 1
            pass
        service.send(c, ["turn"])  # the turn first, its end marker (2) later
        assert sql(c, "SELECT turn_count, ended FROM threads") == [(1, False)]
        service.send(c, ["otel_threads.thread_end"])
        assert sql(c, "SELECT turn_count, ended, ended_at IS NOT NULL FROM threads") == [
            (1, True, True)
        ]
        assert sql(c, "SELECT turn_id, span_count FROM turns") == [(sid(1), 2)]


def test_a_failure_to_mark_the_end_never_reaches_the_app_and_is_logged_once(caplog):
    class Broken(ThreadSpanProcessor):
        def marker_tracer(self):
            raise RuntimeError("no tracer")

    provider = TracerProvider()
    provider.add_span_processor(Broken())
    tr = provider.get_tracer("app")
    for _ in range(2):
        with thread("broken", end=True) as t, tr.start_as_current_span("turn"):
            pass
        assert t.last_turn_id is not None
    assert [r.getMessage() for r in caplog.records if r.name == "otel_threads.context"] == [
        "otel_threads failed to mark a thread's end; further failures are not logged"
    ]
    provider.shutdown()
