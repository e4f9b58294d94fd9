"""Threads on ClickHouse read as a DuckDB file reads: the reading commands with
--clickhouse, and `otel-threads serve --clickhouse` (the query API and the web page with no
receivers), against the same spans in a file and a file-backed collector.

The spans are real: a few threads of OpenAI client calls (the official instrumentation,
the bundled fake model), a tool call, a fork and an error turn. The file derives them as a
collector does; chDB gets them as the clickhouseexporter writes them, derived by the
derive worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from chdb_store import chdb_url
from click.testing import CliRunner
from stored_app import App
from test_clickhouse_worker import conversation, file_store, spans_of
from test_web_origin import request as raw_request
from test_web_read import TOOL

from otel_threads import thread
from otel_threads.cli import main as cli
from otel_threads.clickhouse.engine import connect_engine
from otel_threads.clickhouse.exporter_rows import insert_as_exporter
from otel_threads.clickhouse.schema import init_schema
from otel_threads.clickhouse.worker import Worker
from otel_threads.collector import Config
from otel_threads.collector.serve import ApiServer, clickhouse_server
from otel_threads.collector.testing import running
from otel_threads.otlp.tables import LOG_SCHEMA

ANY = ("127.0.0.1", 0)
ROOT = Path(__file__).resolve().parents[1]
NO_LOGS = LOG_SCHEMA.empty_table()
_CAPTURE = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
}


def llm_app(app: App) -> None:
    """Three threads of OpenAI client calls: support-1 (a tool call and its result, then two
    more turns), forked (a turn answered twice: a fork) and errors (a failed turn)."""
    import openai
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.trace import Status, StatusCode

    from otel_threads.testing.fakellm import FakeLLM

    def chat(client, messages, **extra):
        return client.chat.completions.create(model="gpt-4o-mini", messages=messages, **extra)

    tracer = app.tracer
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=app.provider)
    try:
        with FakeLLM() as llm:
            client = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0)
            history = [{"role": "user", "content": "Where is order A-1042?"}]
            with thread("support-1"), tracer.start_as_current_span("handle_message"):
                reply = chat(client, history, tools=[TOOL]).choices[0].message
                history.append(reply.model_dump(exclude_none=True))
                call_id = reply.tool_calls[0].id
                history.append({"role": "tool", "tool_call_id": call_id, "content": "shipped"})
                answer = chat(client, history, tools=[TOOL]).choices[0].message.content
                history.append({"role": "assistant", "content": answer})
            for text in ("Thanks!", "Bye"):
                with thread("support-1"), tracer.start_as_current_span("handle_message"):
                    history.append({"role": "user", "content": text})
                    answer = chat(client, history).choices[0].message.content
                    history.append({"role": "assistant", "content": answer})
            with thread("forked") as t, tracer.start_as_current_span("ask"):
                chat(client, [{"role": "user", "content": "hi"}])
            for _ in range(2):  # an answer, then a "regenerate" of it
                with thread("forked", previous_turn_id=t.last_turn_id):
                    with tracer.start_as_current_span("ask"):
                        chat(client, [{"role": "user", "content": "again"}])
            for i in range(3):
                with thread("errors"), tracer.start_as_current_span(f"step {i}") as span:
                    chat(client, [{"role": "user", "content": f"refund {i}"}])
                    if i == 1:
                        span.set_status(Status(StatusCode.ERROR, "boom"))
    finally:
        instrumentor.uninstrument()


def aged(spans: pa.Table, days: float = 30.5) -> pa.Table:
    """``spans`` as if they had been sent ``days`` ago: the CLI's "30d ago" columns read the
    same on both stores, however long apart the two commands run."""
    shift_ns = int(days * 86400) * 10**9
    for name in ("start_time_unix_nano", "end_time_unix_nano"):
        spans = spans.set_column(
            spans.schema.get_field_index(name), name, pc.subtract(spans.column(name), shift_ns)
        )
    for name in ("start_time", "end_time"):
        shift = pa.scalar(shift_ns // 1000, pa.duration("us"))
        spans = spans.set_column(
            spans.schema.get_field_index(name), name, pc.subtract(spans.column(name), shift)
        )
    return spans


def chdb_store(spans: pa.Table) -> str:
    """A new chDB database holding ``spans`` as the exporter writes them, derived."""
    url = chdb_url("serve")
    engine = connect_engine(url)
    init_schema(engine)
    insert_as_exporter(engine, spans=spans)
    worker = Worker(engine, settle_s=0)
    try:
        worker.run_once()
    finally:
        worker.close()
    return url


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> tuple[str, str]:
    """(a DuckDB file, a chDB URL): the same spans, each derived."""
    mp = pytest.MonkeyPatch()
    for key, value in _CAPTURE.items():
        mp.setenv(key, value)
    try:
        app = App()
        llm_app(app)
    finally:
        mp.undo()
    spans = aged(spans_of(app))
    path = file_store(tmp_path_factory.mktemp("serve") / "f.duckdb", [(spans, NO_LOGS)])
    return path, chdb_store(spans)


def api_only(**config) -> Config:
    return Config(grpc=None, http=None, receivers=False, api=ANY, **config)


@pytest.fixture(scope="module")
def apis(stores):
    """(a file-backed collector's API, otel-threads serve's on ClickHouse): their URLs."""
    path, url = stores
    server = clickhouse_server(url, api_only())
    try:
        with running(path, http=None) as collector:
            yield collector.endpoints.api, server.start()
    finally:
        server.stop()


def call(base: str, path: str, body=None, method=None, **headers) -> tuple[int, Message, bytes]:
    """A request as a client (no browser's headers) makes it: status, headers, body."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:  # (its socket: left open, a ResourceWarning fails a later test)
            return err.code, err.headers, err.read()


def typeless(value):
    """Attribute values as the exporter keeps them (text): the one thing ClickHouse loses."""
    if isinstance(value, dict):
        return {k: typeless(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typeless(v) for v in value]
    return value if isinstance(value, str) or value is None else json.dumps(value)


def answer(base: str, path: str, body=None) -> tuple[int, object]:
    """A route's status and JSON, without what differs by store (its version)."""
    status, _, data = call(base, path, body)
    payload = json.loads(data)
    if isinstance(payload, dict):
        payload.pop("version", None)
        for span in payload.get("spans", []) if path.endswith("/spans") else []:
            for key in ("attributes", "resource_attributes", "events"):
                span[key] = typeless(span[key])
    return status, payload


def test_the_reading_commands_print_on_clickhouse_what_they_print_on_a_file(stores):
    path, url = stores
    runner = CliRunner()
    commands = [
        ["threads"],
        ["threads", "--json"],
        ["threads", "--sort", "turn_count:asc", "--limit", "2", "--offset", "1"],
        ["threads", "--search", "refund", "--errors"],
        ["threads", "--tool", "get_order_status", "--json"],
        ["threads", "--model", "gpt-4o*", "--min-turns", "3"],
        ["show", "support-1"],
        ["show", "forked", "--json"],
        ["show", "errors", "--format", "markdown"],
        ["sql", "SELECT thread_id, turn_count, llm_call_count FROM threads ORDER BY thread_id"],
        ["sql", "SELECT role, content FROM transcript ORDER BY thread_id, seq", "--csv"],
    ]
    for args in commands:
        on_file = runner.invoke(cli, [*args, "--db", path])
        on_clickhouse = runner.invoke(cli, [*args, "--clickhouse", url])
        assert on_file.exit_code == 0, (args, on_file.output)
        assert on_clickhouse.exit_code == 0, (args, on_clickhouse.output)
        assert on_clickhouse.output == on_file.output, args
    assert "support-1" in runner.invoke(cli, ["threads", "--clickhouse", url]).output
    missing = runner.invoke(cli, ["show", "nope", "--clickhouse", url])
    assert missing.exit_code == 1 and "nope" in missing.output
    both = runner.invoke(cli, ["threads", "--db", path, "--clickhouse", url])
    assert both.exit_code == 2 and "give one of --db, --url or --clickhouse" in both.output
    export = runner.invoke(cli, ["export", "out", "--clickhouse", url])
    assert export.exit_code == 1 and len(export.output.strip().splitlines()) == 1
    assert "export reads a DuckDB file or a collector's API" in export.output


def test_serve_answers_every_read_route_as_a_file_backed_collector(apis):
    on_file, on_clickhouse = apis
    status, threads = answer(on_file, "/ui/threads")
    assert status == 200 and {t["thread_id"] for t in threads["threads"]} == {
        "support-1",
        "forked",
        "errors",
    }
    routes: list[tuple[str, object]] = [
        ("/ui/threads", None),
        ("/ui/threads?sort=turn_count:asc&limit=2&offset=1&wait=2", None),
        ("/ui/threads?search=refund&errors=true", None),
        ("/ui/threads?tool=get_order_status&q=SUPP", None),
        ("/ui/threads?sort=bogus", None),
        ("/threads/query", {"limit": 2, "sort_by": [{"field": "llm_call_count"}]}),
        ("/threads/query", {"filter": {"text": "again", "role": "user"}}),
        ("/threads/errors?turn_limit=1", None),
        ("/threads/errors?turn_offset=1&turn_limit=1&transcript_limit=1", None),
        ("/threads/nope", None),
        ("/threads/forked/turns/ffffffffffffffff/spans", None),
        ("/sql", {"sql": "SELECT thread_id, turn_count, fork_count FROM threads ORDER BY 1"}),
        ("/healthz", None),
    ]
    for thread_id in ("support-1", "forked", "errors"):
        status, detail = answer(on_file, f"/threads/{thread_id}")
        routes.append((f"/threads/{thread_id}", None))
        turns = [t["turn_id"] for t in detail["turns"]]
        routes.append((f"/threads/{thread_id}?through_turn={turns[1]}", None))
        for turn_id in turns:
            spans_path = f"/threads/{thread_id}/turns/{turn_id}/spans"
            routes.append((spans_path, None))
            for span in answer(on_file, spans_path)[1]["spans"]:
                routes.append((f"{spans_path}/{span['span_id']}/messages", None))
    assert sum(path.endswith("/messages") for path, _ in routes) >= 10
    for path, body in routes:
        status, expected = answer(on_file, path, body)
        assert status in (200, 400, 404), (path, status, expected)
        assert answer(on_clickhouse, path, body) == (status, expected), path


def test_serve_refuses_writes_to_the_store_and_sql_that_would_reach_files(apis):
    _, api = apis
    refused = [
        ("SELECT count() FROM threads; DROP TABLE otel_traces", "Syntax error"),
        ("INSERT INTO otel_traces (TraceId) VALUES ('x')", "Syntax error"),
        ("DROP TABLE otel_threads_thread_gens", "Syntax error"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "readonly"),
        ("SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')", "readonly"),
        ("SELECT 1 SETTINGS readonly = 0", ""),  # (inside: cannot lift it)
    ]
    for sql, why in refused[:-1]:
        status, _, text = call(api, "/sql", {"sql": sql})
        assert status == 400 and why in json.loads(text)["error"], (sql, text)
    status, _, text = call(api, "/sql", {"sql": refused[-1][0]})
    assert status == 200 and json.loads(text)["rows"] == [[1]]
    assert call(api, "/sql", {"sql": "SELECT count() FROM threads"})[2] == (
        b'{"columns": ["count()"], "rows": [[3]], "truncated": false}'
    )
    # /arrow: the same statements, whole; ClickHouse takes no ``?`` params
    status, _, text = call(api, "/arrow", {"sql": "SELECT 1 AS n WHERE 1 = ?", "params": [1]})
    assert status == 400 and "takes no params" in json.loads(text)["error"]
    status, headers, data = call(
        api, "/arrow", {"sql": "SELECT thread_id FROM threads ORDER BY 1", "params": []}
    )
    assert status == 200 and headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(data).read_all()
    assert table.column("thread_id").to_pylist() == ["errors", "forked", "support-1"]
    # annotations and evaluations: one line saying where they come from
    writes = [
        ("POST", "/threads/support-1/annotations", {"name": "thumbs", "label": "down"}),
        ("DELETE", "/annotations/a-1", None),
        ("POST", "/evaluations", {"evaluator": "e"}),
        ("POST", "/evaluations/pending", {"evaluator": "e", "quiet_for_s": 0}),
    ]
    for method, path, body in writes:
        status, _, text = call(api, path, body, method=method)
        error = json.loads(text)["error"]
        assert status == 405 and "arrive over OTLP" in error and "\n" not in error, path
    status, _, text = call(api, "/sql", {"sql": "SELECT count() FROM otel_threads_thread_gens"})
    assert json.loads(text)["rows"] == [[3]]  # (nothing was written)


def test_a_dns_rebinding_page_is_refused(apis):
    _, api = apis
    port = api.rsplit(":", 1)[1]
    for path in ("/ui/threads", "/threads/support-1", "/metrics"):
        status, headers, text = raw_request(api, "GET", path, Host=f"evil.example:{port}")
        assert status == 403 and b"--allowed-hosts" in text, text
        assert "access-control-allow-origin" not in headers
        assert raw_request(api, "GET", path, Host=f"localhost:{port}")[0] == 200


def test_a_page_of_another_site_or_origin_is_refused(apis):
    _, api = apis
    body = json.dumps({"sql": "SELECT count() FROM threads"}).encode()
    foreign = [
        {"Origin": "https://evil.example", "Sec_Fetch_Site": "cross-site"},
        {"Origin": "http://127.0.0.1:3000", "Sec_Fetch_Site": "same-site"},
    ]
    for headers in foreign:
        status, answer_headers, _ = raw_request(
            api, "POST", "/sql", body, Content_Type="text/plain", **headers
        )
        assert status == 403 and "access-control-allow-origin" not in answer_headers
        assert raw_request(api, "GET", "/ui/threads", **headers)[0] == 403
    own = {"Origin": api, "Sec_Fetch_Site": "same-origin"}
    assert raw_request(api, "GET", "/ui/threads", **own)[0] == 200


def test_the_token_guards_every_route_but_healthz_and_the_page(stores):
    _, url = stores
    server = clickhouse_server(url, api_only(token="s3cret"))
    api = server.start()
    try:
        assert call(api, "/ui/threads")[0] == 401
        assert call(api, "/sql", {"sql": "SELECT 1"})[0] == 401
        assert call(api, "/ui/threads", Authorization="Bearer s3cret")[0] == 200
        assert call(api, "/healthz")[0] == 200
        assert call(api, "/")[0] == 200  # (the page asks for the token, then calls the API)
        assert call(api, "/metrics")[0] == 401
        status, _, text = call(api, "/metrics", Authorization="Bearer s3cret")
        assert status == 200 and "\notel_threads_store_up 1\n" in text.decode()
        assert 'otel_threads_derive_watermark_seconds{shard="0/1"} 1' in text.decode()
    finally:
        server.stop()


def test_etags_follow_the_generations_the_workers_write(tmp_path):
    """The list's and a thread's ETag change when a worker derives the thread anew, and only
    then; the thread's detail is derived again then (not served from the last one)."""
    app = App(first=500)
    conversation(app, "live", 1)
    url = chdb_store(spans_of(app))
    server = clickhouse_server(url, api_only())
    api = server.start()
    try:
        status, headers, _ = call(api, "/ui/threads")
        tag = headers["ETag"]
        assert status == 200 and call(api, "/ui/threads", **{"If-None-Match": tag})[0] == 304
        status, headers, data = call(api, "/threads/live")
        thread_tag = headers["ETag"]
        assert len(json.loads(data)["turns"]) == 1
        assert call(api, "/threads/live", **{"If-None-Match": thread_tag})[0] == 304
        conversation(app, "live", 1)  # a second turn arrives, and a worker derives it
        engine = connect_engine(url)
        insert_as_exporter(engine, spans=spans_of(app))
        worker = Worker(engine, settle_s=0)
        try:
            worker.run_once()
        finally:
            worker.close()
        status, headers, data = call(api, "/ui/threads", **{"If-None-Match": tag})
        assert status == 200 and headers["ETag"] != tag
        assert json.loads(data)["threads"][0]["turn_count"] == 2
        status, headers, data = call(api, "/threads/live", **{"If-None-Match": thread_tag})
        assert status == 200 and headers["ETag"] != thread_tag
        assert len(json.loads(data)["turns"]) == 2
    finally:
        server.stop()


#: Spans written to a chDB folder as the exporter writes them, in a process of its own.
_WRITE_SPANS = """
import sys
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from stored_app import App
from otel_threads import thread
from otel_threads.clickhouse.engine import connect_engine
from otel_threads.clickhouse.exporter_rows import insert_as_exporter
from otel_threads.otlp.decode import decode_traces_protobuf
app = App()
with thread("served"), app.tracer.start_as_current_span("turn"):
    pass
spans = decode_traces_protobuf(encode_spans(app.spans()).SerializeToString()).table
insert_as_exporter(connect_engine(sys.argv[1]), spans=spans)
"""


def test_serve_runs_from_the_command_line_on_chdb_and_stops_on_sigterm(tmp_path):
    """A process of its own (chDB holds one folder per process): init, spans written, then
    serve --derive on port 0, which derives them in its own process; the start-up line says
    where; SIGTERM stops it."""
    folder = f"chdb://{tmp_path / 'store'}"
    command = [sys.executable, "-m", "otel_threads.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    subprocess.run([*command, "clickhouse", "init", "--url", folder], check=True, env=env)
    subprocess.run([sys.executable, "-c", _WRITE_SPANS, folder], check=True, env=env)
    serve = subprocess.Popen(
        [*command, "serve", "--clickhouse", folder, "--api", "127.0.0.1:0", "--derive"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while not any("serve started" in line for line in lines):
            assert time.monotonic() < deadline and serve.poll() is None, lines
            lines.append(serve.stderr.readline())
        api = lines[-1].split("api=", 1)[1].split()[0]
        assert call(api, "/healthz")[0] == 200
        found: list[str] = []
        while not found:  # the worker in the process derives what was written before
            assert time.monotonic() < deadline and serve.poll() is None
            status, _, data = call(api, "/ui/threads")
            assert status == 200
            found = [t["thread_id"] for t in json.loads(data)["threads"]]
            time.sleep(0.2)
        assert found == ["served"]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(60) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        serve.stderr.close()
    assert "Example:" in CliRunner().invoke(cli, ["serve", "--help"]).output
    bad = CliRunner().invoke(cli, ["serve", "--clickhouse", folder, "--api", "off"])
    assert bad.exit_code == 2 and "--api must be HOST:PORT, not off" in bad.output
    bare = CliRunner().invoke(
        cli, ["serve", "--clickhouse", chdb_url("bare"), "--api", "127.0.0.1:0"]
    )
    assert bare.exit_code == 1 and "otel-threads clickhouse init --url" in bare.output


CHROMIUM = (
    os.environ.get("OTEL_THREADS_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)


@pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="chromium is not installed")
def test_the_page_on_clickhouse_lists_the_threads_and_shows_a_transcript(apis):
    sync_api = pytest.importorskip("playwright.sync_api")
    _, api = apis
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(api + "/")
            page.wait_for_selector("#threads tbody tr")
            rows = page.eval_on_selector_all(
                "#threads tbody tr", "rows => rows.map(r => r.dataset.id)"
            )
            assert sorted(rows) == ["errors", "forked", "support-1"]
            page.locator("#threads tbody tr", has_text="support-1").locator("td").first.click()
            page.wait_for_function(
                "() => document.querySelector('#d-title').textContent === 'support-1'"
            )
            page.wait_for_selector("#d-chat .msg.tool")
            assert page.locator("#d-turns .turn").count() == 3
            assert page.locator("#d-chat .msg.user .bubble").first.text_content() == (
                "Where is order A-1042?"
            )
            assert "shipped" in page.locator("#d-chat .msg.tool").first.text_content()
            assert (
                "get_order_status"
                in page.locator("#d-chat .msg.assistant .call").first.text_content()
            )
            page.locator("#d-turns .turn").first.locator("button.spans-btn").click()
            page.wait_for_selector("#d-spans:not([hidden]) .span-row")
            names = page.eval_on_selector_all(".span-row .span-name", "n => n.map(x => x.title)")
            assert names == ["handle_message", "chat gpt-4o-mini", "chat gpt-4o-mini"]
        finally:
            browser.close()
    assert errors == [], errors


def test_an_api_server_stops_safely_before_it_starts(stores):
    _, url = stores
    server = clickhouse_server(url, api_only())
    server.stop()
    server.stop()
    assert isinstance(server, ApiServer)
