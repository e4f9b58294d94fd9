"""What the web page asks of the API listener, over real HTTP: the page's files with
their safety headers, the list it sorts by any column, a turn's spans; and errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from stored_app import App

from otel_threads import thread
from otel_threads.collector import Collector, Config
from otel_threads.collector.testing import sql

ANY = ("127.0.0.1", 0)


@pytest.fixture
def collector(tmp_path):
    c = Collector(
        Config(
            parse_workers=0,
            db=str(tmp_path / "w.duckdb"),
            grpc=ANY,
            http=None,
            api=ANY,
            token="s3cret",
        )
    )
    c.start()
    app = App()
    for n, name in ((3, "a"), (1, "b"), (2, "c")):
        for _ in range(n):
            with thread(name), app.tracer.start_as_current_span("turn"):
                with app.tracer.start_as_current_span("child", attributes={"k": "<v>"}):
                    pass
    app.send(c)
    sql(c, "SELECT 1")
    yield c
    c.stop()


def get(c: Collector, path: str, token: str | None = "s3cret"):
    req = urllib.request.Request(c.endpoints.api + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def test_the_page_is_served_without_a_token_with_a_strict_policy(collector):
    status, headers, body = get(collector, "/", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script src="/static/app.js" defer></script>' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, headers, _ = get(collector, f"/static/{name}", token=None)
        assert status == 200 and headers["Content-Type"].startswith(kind)
    assert get(collector, "/static/../api.py", token=None)[0] == 401  # not a page file
    assert get(collector, "/static/nope.js")[0] == 404
    assert get(collector, "/ui/threads", token=None)[0] == 401  # the data needs the token


def test_the_page_list_sorts_by_any_column_and_filters(collector):
    def ids(query: str) -> list[str]:
        status, _, body = get(collector, "/ui/threads?" + query)
        assert status == 200, body
        return [t["thread_id"] for t in json.loads(body)["threads"]]

    assert ids("sort=turn_count:desc") == ["a", "c", "b"]
    assert ids("sort=span_count:asc") == ["b", "c", "a"]
    assert ids("sort=total_tokens:desc&q=A") == ["a"]
    assert ids("sort=thread_id:asc&limit=2&offset=1") == ["b", "c"]
    body = json.loads(get(collector, "/ui/threads?limit=1")[2])
    assert body["total"] == 3 and len(body["threads"]) == 1
    for query, message in [
        ("sort=nope:asc", "cannot sort by 'nope'"),
        ("sort=turn_count:up", "cannot sort by 'turn_count' 'up'"),
        ("limit=x", "limit must be an integer"),
        ("limit=0", "limit must be an integer from 1"),
        ("after=yesterday", "must be an ISO 8601 datetime"),
        ("bogus=1", "unknown parameter(s) ['bogus']"),
    ]:
        status, _, body = get(collector, "/ui/threads?" + query)
        assert status == 400 and message in json.loads(body)["error"], (query, body)


def test_the_threads_query_keeps_to_the_contracts_sort_fields(collector):
    from otel_threads.query import SortBy

    with pytest.raises(ValueError, match="cannot sort by 'span_count'"):
        SortBy("span_count")


def test_a_turns_spans_with_attributes_as_json(collector):
    detail = json.loads(get(collector, "/threads/a")[2])
    turn = detail["turns"][0]["turn_id"]
    status, _, body = get(collector, f"/threads/a/turns/{turn}/spans")
    assert status == 200
    spans = json.loads(body)["spans"]
    assert [s["name"] for s in spans] == ["turn", "child"]
    assert spans[1]["parent_span_id"] == spans[0]["span_id"] == turn
    assert spans[1]["attributes"]["k"] == "<v>"
    assert get(collector, f"/threads/b/turns/{turn}/spans")[0] == 404  # not b's turn
    assert get(collector, "/threads/zz/turns/00/spans")[0] == 404


def test_a_read_chooses_how_long_it_waits_for_derivation(collector):
    """?wait=SECONDS (0 to 2) bounds each read's wait for derivation; anything else is a
    one-line 400, on every reading endpoint."""
    for path in (
        "/ui/threads?wait=0",
        "/ui/threads?wait=1.5",
        "/threads/a?wait=0",
        "/threads/a/turns/x/spans?wait=0",
    ):
        assert get(collector, path)[0] in (200, 404), path
    assert json.loads(get(collector, "/ui/threads?wait=0")[2])["total"] == 3
    for bad in ("abc", "3", "-1", "nan"):
        status, _, body = get(collector, f"/ui/threads?wait={bad}")
        assert status == 400 and b"wait must be a number of seconds from 0 to 2" in body, bad
        assert get(collector, f"/threads/a?wait={bad}")[0] == 400
    req = urllib.request.Request(
        collector.endpoints.api + "/sql?wait=0",
        data=b'{"sql": "SELECT count(*) FROM threads"}',
        headers={"Authorization": "Bearer s3cret", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["rows"] == [[3]]
    req.full_url = collector.endpoints.api + "/sql?other=1"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    err.value.close()
    assert err.value.code == 400


def test_a_read_without_waiting_sees_what_is_derived_now(tmp_path):
    """Reads.read(0) does not wait for derivation; read(wait_s) waits at most that long."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from otel_threads.otlp.decode import decode_traces_protobuf
    from otel_threads.store.reads import Reads
    from otel_threads.store.writer import Writer

    app = App()
    with thread("late"), app.tracer.start_as_current_span("turn"):
        pass
    table = decode_traces_protobuf(encode_spans(app.spans()).SerializeToString()).table
    writer = Writer(str(tmp_path / "r.duckdb")).start()
    reads = Reads(writer.store)
    try:
        with writer.store.checkpoint_lock:  # derivation cannot run meanwhile
            writer.write("spans", table)
            for wait_s in (0, 0.1):
                with reads.read(wait_s) as con:
                    assert con.execute("SELECT count(*) FROM threads").fetchall() == [(0,)]
                    assert con.execute("SELECT count(*) FROM spans_raw").fetchall() == [(1,)]
        with reads.read(60) as con:
            assert con.execute("SELECT thread_id FROM threads").fetchall() == [("late",)]
    finally:
        writer.close()
