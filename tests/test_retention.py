"""Retention: old threads go whole, live ones are never cut, and the space is reused.

Spans with chosen start times come from a real SDK through a real collector (or the
embedded exporter into a file); `prune` runs as `collect --retention` and
`otel-threads prune` run it.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from click.testing import CliRunner
from opentelemetry import trace
from stored_app import KEPT_VIEWS, App, kept_sql

from otel_threads import ThreadsClient, thread
from otel_threads.cli import main as cli
from otel_threads.collector import Config
from otel_threads.collector.config import ConfigError
from otel_threads.collector.testing import running, sql
from otel_threads.exporter import DuckDBSpanExporter
from otel_threads.store import connect
from otel_threads.store.retention import parse_before, prune

ANY = ("127.0.0.1", 0)
NOW = dt.datetime.now(dt.timezone.utc)
OLD = NOW - dt.timedelta(days=40)
EVALUATION = "gen_ai.evaluation.result"


def ns(when: dt.datetime) -> int:
    return int(when.timestamp() * 1e9)


def span(app: App, name: str, when: dt.datetime, **kw):
    return app.tracer.start_as_current_span(name, start_time=ns(when), end_on_exit=False, **kw)


def converse(app: App) -> None:
    """old: two turns 40 days ago; new: a turn now; a request now that also served
    thread old-x, whose own spans are 40 days old; threadless traces old and new."""
    tr = app.tracer
    for day in (0, 1):
        with thread("old"), span(app, f"old-turn-{day}", OLD + dt.timedelta(hours=day)) as s:
            with span(app, "old-child", OLD + dt.timedelta(hours=day)) as c:
                c.add_event(EVALUATION, {"gen_ai.evaluation.name": "ok"})  # (annotations)
                c.end(ns(OLD + dt.timedelta(hours=day, seconds=1)))
            s.end(ns(OLD + dt.timedelta(hours=day, seconds=2)))
    with thread("new"), tr.start_as_current_span("new-turn"):
        pass
    with thread("live"), tr.start_as_current_span("live-turn") as live:
        live.add_event(EVALUATION, {"gen_ai.evaluation.name": "ok"})
        with thread("old-x"), span(app, "old-x-turn", OLD) as s:
            s.end(ns(OLD + dt.timedelta(seconds=1)))
    with span(app, "threadless-old", OLD) as s:
        s.end(ns(OLD + dt.timedelta(seconds=1)))
    with tr.start_as_current_span("threadless-new"):
        pass


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "r.duckdb", http=None, retention=dt.timedelta(days=30)) as c:
        yield c


def test_old_threads_go_whole_and_live_ones_stay(collector):
    app = App()
    converse(app)
    app.send(collector)
    assert sql(collector, "SELECT thread_id FROM threads ORDER BY 1") == [
        ("live",),
        ("new",),
        ("old",),
        ("old-x",),
    ]

    client = ThreadsClient(collector.endpoints.api)
    for thread_id in ("old", "new"):
        client.annotate(thread_id, "thumbs", label="up")
    assert len(sql(collector, "SELECT 1 FROM annotations")) == 5

    res = collector.retention.run_once()  # what `collect --retention 30d` runs
    assert (res.threads, res.traces, res.spans) == (2, 3, 6)
    assert sql(collector, "SELECT thread_id FROM threads ORDER BY 1") == [("live",), ("new",)]
    assert sql(collector, "SELECT name FROM spans ORDER BY name") == [
        ("live-turn",),
        ("new-turn",),
        ("threadless-new",),
    ]
    assert sql(collector, "SELECT count(*) FROM turns WHERE thread_id LIKE 'old%'") == [(0,)]
    assert sql(collector, "SELECT thread_id, source FROM annotations ORDER BY 1") == [
        ("live", "otlp"),
        ("new", "api"),
    ]
    for view in KEPT_VIEWS:  # the kept rows are what deriving the rest from scratch gives
        assert sql(collector, kept_sql(view)) == sql(
            collector, f"SELECT * FROM derive_{view} ORDER BY ALL"
        ), view
    assert collector.retention.run_once().spans == 0  # nothing more is old
    import urllib.request

    with urllib.request.urlopen(f"{collector.endpoints.api}/metrics", timeout=10) as resp:
        assert "\notel_threads_pruned_threads_total 2\n" in resp.read().decode()


def test_prune_command_on_a_file_and_its_errors(tmp_path):
    path = str(tmp_path / "p.duckdb")
    app = App()
    converse(app)
    exporter = DuckDBSpanExporter(path)
    assert exporter.export(app.spans()).name == "SUCCESS"
    exporter.shutdown()

    out = CliRunner().invoke(cli, ["prune", "--before", "30d", "--db", path])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("deleted 2 threads, 3 whole traces, 6 spans")
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT thread_id FROM threads ORDER BY 1").fetchall() == [
            ("live",),
            ("new",),
        ]

    bad = CliRunner().invoke(cli, ["prune", "--before", "last week", "--db", path])
    assert bad.exit_code == 2
    assert "expected a time like 2026-11-01T00:00 or an age like 30d, got 'last week'" in (
        bad.output
    )
    missing = CliRunner().invoke(
        cli, ["prune", "--before", "1d", "--db", str(tmp_path / "none.duckdb")]
    )
    assert missing.exit_code == 1 and "no otel-threads database at" in missing.output


def test_prune_refuses_a_file_a_collector_holds(collector):
    out = CliRunner().invoke(cli, ["prune", "--before", "30d", "--db", collector.config.db])
    assert out.exit_code == 1
    assert "held by an otel-threads collector" in out.output and "--retention" in out.output


def test_retention_settings():
    assert Config.load({"retention": "12h"}, env={}).retention == dt.timedelta(hours=12)
    assert Config.load({}, env={"OTEL_THREADS_RETENTION": "2w"}).retention == dt.timedelta(weeks=2)
    assert Config.load({}, env={}).retention is None
    with pytest.raises(ConfigError, match=r"--retention: expected a duration like 30d"):
        Config.load({"retention": "a month"}, env={})
    assert parse_before("2026-11-01T02:00+02:00") == dt.datetime(2026, 11, 1)
    assert parse_before("30d", now=dt.datetime(2026, 12, 2)) == dt.datetime(2026, 11, 2)


def test_pruned_space_is_reused(tmp_path):
    """A store that prunes as much as it takes in stops growing."""
    path = str(tmp_path / "grow.duckdb")

    def fill(first: int) -> None:
        app = App(first=first)
        for i in range(300):
            with (
                thread(f"t{first}-{i}"),
                span(app, "turn", OLD, attributes={"payload": "x" * 2000}) as s,
            ):
                for _ in range(9):
                    with span(app, "child", OLD, attributes={"payload": "y" * 500}) as c:
                        c.end(ns(OLD))
                s.end(ns(OLD))
        exporter = DuckDBSpanExporter(path)
        assert exporter.export(app.spans()).name == "SUCCESS"
        exporter.shutdown()

    def prune_all() -> None:
        with connect(path) as con:
            assert prune(con, NOW.replace(tzinfo=None)).threads == 300
            con.execute("CHECKPOINT")

    fill(1)
    prune_all()
    size = os.path.getsize(path)
    for round_ in range(2, 5):
        fill(round_ * 10_000)
        prune_all()
    assert os.path.getsize(path) <= size * 1.25, (size, os.path.getsize(path))


def test_span_helper_sets_the_start_time():
    app = App()
    with span(app, "s", OLD) as s:
        s.end(ns(OLD))
    assert app.spans()[0].start_time == ns(OLD)
    assert isinstance(s, trace.Span)
