"""One odd span never stops the store.

1. Spans built to break the views (every key the SQL reads, every odd value shape, every
   convention; tests/hostile.py) derive without error, and every view reads them.
2. A span that still breaks a derived view (a view made to fail on it here) is set
   aside: recorded in derive_errors, counted in /metrics, retried when new data for it
   arrives; every other thread derives and queries normally meanwhile.
"""

from __future__ import annotations

import grpc
import pytest
from hostile import hostile_requests
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from stored_app import App, sid

from otel_threads import thread
from otel_threads.collector import Collector
from otel_threads.collector.testing import running, sql

ANY = ("127.0.0.1", 0)
VIEWS = (
    "spans",
    "span_threads",
    "turns",
    "threads",
    "transcript",
    "llm_calls",
    "messages",
    "forks",
    "unresolved_turns",
    "derive_errors",
)


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "d.duckdb", grpc=ANY, http=None, api=ANY) as c:
        yield c


def export(c: Collector, traces=None, logs=None) -> None:
    target = c.endpoints.grpc.split("://", 1)[-1]
    with grpc.insecure_channel(target, [("grpc.enable_http_proxy", 0)]) as channel:
        if traces is not None:
            res = trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces, timeout=60)
            assert not res.partial_success.rejected_spans, res.partial_success.error_message
        if logs is not None:
            res = logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs, timeout=60)
            assert not res.partial_success.rejected_log_records


def converse(app: App, thread_id: str, *names: str) -> None:
    with thread(thread_id):
        for name in names:
            with app.tracer.start_as_current_span(name):
                with app.tracer.start_as_current_span(f"{name}-child"):
                    pass


def test_spans_built_to_break_every_view_derive_and_read(collector):
    good = App()
    converse(good, "good", "a", "b")
    good.send(collector)
    traces, logs, threads = hostile_requests(1000, "h-")
    export(collector, traces, logs)
    converse(good, "good", "c")
    good.send(collector, ["c", "c-child"])

    assert sql(collector, "SELECT trace_id, error FROM derive_errors") == []
    assert sql(
        collector, "SELECT thread_id, turn_count, span_count FROM threads WHERE thread_id = 'good'"
    ) == [("good", 3, 6)]
    assert sql(
        collector,
        "SELECT thread_id, turn_count, span_count FROM threads "
        "WHERE thread_id LIKE 'h-%' ORDER BY thread_id",
    ) == [(t, 1, 2) for t in sorted(threads)]
    for view in VIEWS:  # every public view reads the whole store
        sql(collector, f"SELECT * FROM {view}")
    # the LLM spans of every convention were read as calls (nothing dropped on the way)
    (calls,) = sql(
        collector, "SELECT count(DISTINCT thread_id) FROM llm_calls WHERE thread_id LIKE 'h-%'"
    )[0]
    assert calls == len(threads)


def poison(c: Collector, view: str) -> str:
    """Make ``view`` (as stored in the file) fail whenever what it derives from holds a
    span named 'poison' (the scope of a refresh: a trace, or a thread's traces); returns
    the SQL that restores it."""
    with c.store.cursor() as cur:
        (body,) = cur.execute(
            "SELECT sql FROM duckdb_views() WHERE view_name = ? AND schema_name = 'main'", [view]
        ).fetchone()
        original = body[body.index(" AS") + 3 :].rstrip().rstrip(";")
        cur.execute(f"""CREATE OR REPLACE VIEW {view} AS
            SELECT * FROM ({original}) UNION ALL BY NAME
            SELECT CAST(error('poisoned by a span named poison') AS VARCHAR) AS thread_id
            FROM spans_raw WHERE name = 'poison'""")
    return f"CREATE OR REPLACE VIEW {view} AS {original}"


@pytest.mark.parametrize(
    "view",
    ["derive_span_threads", "derive_turns", "derive_transcript", "derive_threads", "messages"],
)
def test_a_trace_that_does_not_derive_is_set_aside_and_the_others_go_on(collector, view):
    import urllib.request

    app = App()
    converse(app, "before", "a")  # trace 1
    app.send(collector)
    restore = poison(collector, view)
    converse(app, "bad", "poison")  # trace 2
    converse(app, "after", "b", "c")  # traces 3, 4
    app.send(collector, ["poison", "poison-child", "b", "b-child", "c", "c-child"])

    assert sql(
        collector,
        "SELECT trace_id, thread_id, failures, error LIKE '%poisoned%', "
        "first_failed_at <= last_failed_at FROM derive_errors",
    ) == [(format(2, "032x"), "bad", 1, True, True)]
    assert sql(collector, "SELECT thread_id, turn_count FROM threads ORDER BY thread_id") == [
        ("after", 2),
        ("before", 1),
    ]
    assert sql(collector, "SELECT count(*) FROM spans WHERE thread_id = 'after'") == [(4,)]
    with urllib.request.urlopen(f"{collector.endpoints.api}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert "\notel_threads_derive_errors 1\n" in metrics
    assert "\notel_threads_derive_set_aside_total 1\n" in metrics

    # new data for the trace: tried again, and still failing, counted again
    converse(app, "after", "d")  # trace 5: the others still go on
    with app.tracer.start_as_current_span(
        "late", context=_child_of(app, "poison"), attributes={"gen_ai.conversation.id": "bad"}
    ):
        pass
    app.send(collector, ["d", "d-child", "late"])
    assert sql(collector, "SELECT trace_id, failures FROM derive_errors") == [
        (format(2, "032x"), 2)
    ]
    assert sql(collector, "SELECT turn_count FROM threads WHERE thread_id = 'after'") == [(3,)]

    # once the cause is gone (here: the view restored), new data derives it, error cleared
    with collector.store.cursor() as cur:
        cur.execute(restore)
    with app.tracer.start_as_current_span(
        "later", context=_child_of(app, "poison"), attributes={"gen_ai.conversation.id": "bad"}
    ):
        pass
    app.send(collector, ["later"])
    assert sql(collector, "SELECT * FROM derive_errors") == []
    assert sql(
        collector, "SELECT thread_id, turn_count, span_count FROM threads ORDER BY thread_id"
    ) == [("after", 3, 6), ("bad", 1, 4), ("before", 1, 2)]


def _child_of(app: App, name: str):
    from opentelemetry import trace

    (span,) = app.spans([name])
    return trace.set_span_in_context(trace.NonRecordingSpan(span.get_span_context()))


def test_sid_helper_is_the_span_id_format():
    assert sid(2) == "0000000000000002"


def test_a_rebuild_that_fails_on_the_data_derives_the_rest_and_sets_that_aside(tmp_path):
    """An upgrade rebuilds the derived tables from everything stored, a batch of traces at
    a time; one trace that does not derive must not keep the others from deriving."""
    from otel_threads.exporter import DuckDBSpanExporter
    from otel_threads.store import connect
    from otel_threads.store.derive import Deriver

    path = str(tmp_path / "b.duckdb")
    app = App()
    converse(app, "one", "a")
    converse(app, "bad", "poison")
    converse(app, "two", "b")
    exporter = DuckDBSpanExporter(path)
    assert exporter.export(app.spans()).name == "SUCCESS"
    exporter.shutdown()

    con = connect(path)
    try:
        with con.cursor() as cur:
            (body,) = cur.execute(
                "SELECT sql FROM duckdb_views() WHERE view_name = 'derive_turns'"
            ).fetchone()
            original = body[body.index(" AS") + 3 :].rstrip().rstrip(";")
            cur.execute(f"""CREATE OR REPLACE VIEW derive_turns AS
                SELECT * FROM ({original}) UNION ALL BY NAME
                SELECT CAST(error('poisoned') AS VARCHAR) AS thread_id
                FROM spans_raw WHERE name = 'poison'""")
        deriver = Deriver(con)
        deriver.rebuild([("turns_mat", "derive_turns")])  # emptied, every trace queued
        assert con.execute("SELECT count(*) FROM turns_mat").fetchall() == [(0,)]
        assert deriver.pending() == 3
        while deriver.refresh():
            pass
        assert con.execute("SELECT thread_id FROM turns ORDER BY 1").fetchall() == [
            ("one",),
            ("two",),
        ]
        assert con.execute("SELECT thread_id, failures FROM derive_errors").fetchall() == [
            ("bad", 1)
        ]
    finally:
        con.close()
