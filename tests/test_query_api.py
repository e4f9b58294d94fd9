"""The threads query through its three doors: ThreadsClient, the HTTP API, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_threads import SortBy, ThreadsClient, ThreadSpanProcessor, ThreadsQueryReq, thread
from otel_threads.cli import main as cli
from otel_threads.collector import Collector, Config

ANY = ("127.0.0.1", 0)
TURNS = {"alpha": 3, "bravo": 1, "charlie": 2}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A collector holding a file with three threads of 3, 1 and 2 turns."""
    db = str(tmp_path_factory.mktemp("q") / "q.duckdb")
    c = Collector(Config(parse_workers=0, db=db, grpc=ANY, http=None, api=ANY))
    c.start()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "qa", "otel_threads.project": "proj"})
    )
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=c.endpoints.grpc, insecure=True))
    )
    tracer = provider.get_tracer("qa")
    for name, turns in TURNS.items():
        with thread(name):
            for i in range(turns):
                with tracer.start_as_current_span(f"{name}-turn-{i}"):
                    pass
    provider.shutdown()
    c.store.sync(30)
    yield c, db
    c.stop()


def api(c: Collector, method: str, path: str, body: object = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        c.endpoints.api + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_the_client_reads_a_held_file_through_the_collector_and_by_url(served):
    c, db = served
    for client in (ThreadsClient(db), ThreadsClient(c.endpoints.api)):
        res = client.threads_query(ThreadsQueryReq(sort_by=[SortBy("turn_count", "desc")]))
        assert [(t.thread_id, t.turn_count) for t in res.threads] == [
            ("alpha", 3),
            ("charlie", 2),
            ("bravo", 1),
        ]
        assert res.total == 3 and res.threads[0].project == "proj"
        page = client.threads_query(
            ThreadsQueryReq(limit=1, offset=1, sort_by=[SortBy("thread_id", "asc")])
        )
        assert [t.thread_id for t in page.threads] == ["bravo"] and page.total == 3
        detail = client.thread("alpha")
        assert [t.name for t in detail.turns] == ["alpha-turn-0", "alpha-turn-1", "alpha-turn-2"]
        assert isinstance(detail.thread.start_time, dt.datetime)
        with pytest.raises(KeyError):
            client.thread("nope")


def test_the_datetime_window_selects_threads_that_overlap_it(served):
    _, db = served
    client = ThreadsClient(db)
    (alpha,) = client.threads_query(ThreadsQueryReq(thread_ids=["alpha"])).threads
    inside = alpha.start_time + (alpha.last_updated - alpha.start_time) / 2
    res = client.threads_query(
        ThreadsQueryReq(
            thread_ids=["alpha"], sortable_datetime_after=inside, sortable_datetime_before=inside
        )
    )
    assert [t.thread_id for t in res.threads] == ["alpha"]
    assert res.threads[0].turn_count == 3  # the statistics are the whole thread's
    later = alpha.last_updated + dt.timedelta(seconds=1)
    assert (
        client.threads_query(
            ThreadsQueryReq(thread_ids=["alpha"], sortable_datetime_after=later)
        ).total
        == 0
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"sort_by": [{"field": "name; DROP TABLE spans", "direction": "asc"}]}, "cannot sort by"),
        ({"limit": 0}, "limit must be"),
        ({"offset": -1}, "offset must be"),
        ({"sortable_datetime_after": "yesterday"}, "ISO 8601"),
        ({"colour": "red"}, "unknown field"),
        ([1, 2], "JSON object"),
    ],
)
def test_invalid_requests_get_a_400_saying_what_is_wrong(served, body, message):
    status, out = api(served[0], "POST", "/threads/query", body)
    assert status == 400 and message in out["error"]
    with pytest.raises(ValueError, match=message):  # the same check in Python
        ThreadsQueryReq.from_json(body)


def test_http_thread_detail_and_404(served):
    c, _ = served
    status, out = api(c, "GET", "/threads/charlie")
    assert status == 200 and out["thread"]["turn_count"] == 2 and len(out["turns"]) == 2
    assert out["transcript"] == []
    assert api(c, "GET", "/threads/unknown")[0] == 404


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO derive_queue VALUES ('x')",
        "DELETE FROM spans_raw",
        "SELECT 1; DELETE FROM spans_raw",
        "COPY spans TO '/tmp/otel-threads-leak.csv'",
        "CREATE TABLE t AS SELECT 1",
    ],
)
def test_sql_over_http_is_read_only_by_the_database(served, statement):
    c, _ = served
    status, out = api(c, "POST", "/sql", {"sql": statement})
    assert status == 400, out
    assert api(c, "POST", "/sql", {"sql": "SELECT count(*) AS n FROM spans"}) == (
        200,
        {"columns": ["n"], "rows": [[6]], "truncated": False},
    )


def test_cli_threads_show_and_sql(served):
    c, db = served
    runner = CliRunner()
    out = runner.invoke(cli, ["threads", "--db", db, "--sort", "turn_count:desc"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split()[:4] == ["THREAD", "TURNS", "STARTED", "UPDATED"]
    assert [ln.split()[0] for ln in lines[1:4]] == ["alpha", "charlie", "bravo"]
    assert "1-3 of 3 threads" in out.output
    as_json = json.loads(runner.invoke(cli, ["threads", "--url", c.endpoints.api, "--json"]).output)
    assert as_json["total"] == 3
    shown = runner.invoke(cli, ["show", "alpha", "--db", db])
    assert shown.exit_code == 0 and "alpha-turn-2" in shown.output
    assert "(no messages recorded in this thread)" in shown.output
    csv_out = runner.invoke(
        cli,
        [
            "sql",
            "SELECT thread_id, turn_count FROM threads ORDER BY thread_id",
            "--db",
            db,
            "--csv",
        ],
    )
    assert csv_out.output.splitlines() == [
        "thread_id,turn_count",
        "alpha,3",
        "bravo,1",
        "charlie,2",
    ]
    bad = runner.invoke(cli, ["threads", "--db", db, "--sort", "colour"])
    assert bad.exit_code == 1 and "cannot sort by 'colour'" in bad.output
    missing = runner.invoke(cli, ["show", "nope", "--db", db])
    assert missing.exit_code == 1 and "no thread 'nope'" in missing.output


def test_cli_reads_a_file_nobody_holds(tmp_path):
    import otel_threads

    path = str(tmp_path / "solo.duckdb")
    setup = otel_threads.configure(db=path, set_global=False)
    with thread("solo"), setup.tracer_provider.get_tracer("s").start_as_current_span("turn"):
        pass
    setup.shutdown()
    out = CliRunner().invoke(cli, ["threads", "--db", path])
    assert out.exit_code == 0 and "solo" in out.output
    assert (
        "read-only"
        in CliRunner().invoke(cli, ["sql", "DELETE FROM spans_raw", "--db", path]).output
    )
    nowhere = CliRunner().invoke(cli, ["threads", "--db", str(tmp_path / "none.duckdb")])
    assert nowhere.exit_code == 1 and "no otel-threads database" in nowhere.output


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in ("threads", "show", "sql", "collect"):
        out = runner.invoke(cli, [name, "--help"])
        assert out.exit_code == 0 and "Example:" in out.output, name


def test_lists_carry_previews_and_the_detail_whole_texts(tmp_path):
    """A thread whose first input is a whole document: the list (client, API, page)
    carries a preview, the thread's detail the whole text."""
    from stored_app import App

    from otel_threads.collector.testing import sql
    from otel_threads.query import PREVIEW_CHARS

    long_text = "word " * 20_000
    c = Collector(
        Config(parse_workers=0, db=str(tmp_path / "p.duckdb"), grpc=ANY, http=None, api=ANY)
    )
    c.start()
    try:
        app = App()
        with thread("doc"), app.tracer.start_as_current_span("turn"):
            with app.tracer.start_as_current_span(
                "chat",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": long_text}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]
                    ),
                },
            ):
                pass
        app.send(c)
        assert sql(c, "SELECT length(first_input) FROM threads") == [(len(long_text),)]
        client = ThreadsClient(c.endpoints.api)
        (listed,) = client.threads_query(ThreadsQueryReq()).threads
        assert listed.first_input == long_text[: PREVIEW_CHARS - 1] + "…"
        assert listed.last_output == "ok"
        status, page = api(c, "GET", "/ui/threads")
        assert status == 200 and page["threads"][0]["first_input"] == listed.first_input
        assert client.thread("doc").thread.first_input == long_text
    finally:
        c.stop()


def test_sql_refuses_what_would_plan_for_minutes_and_cuts_big_answers(served):
    """A statement naming hundreds of tables would plan for minutes, deaf to the
    timeout: refused up front. An answer past the byte cap is cut and says so."""
    c, _ = served
    n = 400
    join = (
        "SELECT count(*) FROM "
        + ", ".join(f"threads t{i}" for i in range(n))
        + " WHERE "
        + " AND ".join(f"t{i}.thread_id = t{i + 1}.thread_id" for i in range(n - 1))
    )
    status, answer = api(c, "POST", "/sql", {"sql": join})
    assert status == 400 and "names 400 tables" in answer["error"], answer
    status, answer = api(
        c, "POST", "/sql", {"sql": "SELECT i, repeat('x', 10000000) AS big FROM range(4) r(i)"}
    )
    assert status == 200 and answer["truncated"] is True
    assert [row[0] for row in answer["rows"]] == [0]  # 10 MB of the 16 MiB cap; not 20
    status, answer = api(c, "POST", "/sql", {"sql": "SELECT i FROM range(3) r(i)"})
    assert answer == {"columns": ["i"], "rows": [[0], [1], [2]], "truncated": False}
