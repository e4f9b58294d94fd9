"""Annotations (issue 16): the `annotations` view from the API, the client on a file and
over HTTP, and OTLP evaluation events (`gen_ai.evaluation.result`) sent by the real OTLP
exporters, attached through their parent span, a span event, or only the response id;
redelivered events make one row; threads.annotation_count and the thread detail."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_threads import ThreadsClient, ThreadSpanProcessor, thread
from otel_threads.annotations import AnnotationNotFoundError
from otel_threads.client import ThreadNotFoundError, ThreadsClientError
from otel_threads.collector.testing import running, sql

EVALUATION = "gen_ai.evaluation.result"
COLUMNS = "thread_id, turn_id, span_id, name, label, score, explanation, source, author"


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "a.duckdb") as c:
        yield c


def app_spans(
    c, response_id: str = "chatcmpl-1", thread_id: str = "t", token: str | None = None
) -> dict[str, str]:
    """One turn with an LLM call (response id ``response_id``), sent over OTLP/gRPC;
    returns the ids of the turn and the call span."""
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=c.endpoints.grpc,
                insecure=True,
                headers={"authorization": f"Bearer {token}"} if token else None,
            )
        )
    )
    tracer = provider.get_tracer("app")
    with thread(thread_id), tracer.start_as_current_span("turn") as turn:
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.id": response_id,
        }
        with tracer.start_as_current_span("chat gpt-4o", attributes=attrs) as call:
            ids = {
                "trace": format(call.get_span_context().trace_id, "032x"),
                "turn": format(turn.get_span_context().span_id, "016x"),
                "call": format(call.get_span_context().span_id, "016x"),
                "call_int": call.get_span_context().span_id,
                "trace_int": call.get_span_context().trace_id,
            }
    provider.shutdown()
    return ids


def evaluation_records(attributes: dict, trace_id: int = 0, span_id: int = 0) -> list:
    """Log records as the SDK makes them (an evaluator service's), ready to export."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "judge"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("evals").emit(
        LogRecord(
            trace_id=trace_id,
            span_id=span_id,
            trace_flags=1 if trace_id else 0,
            event_name=EVALUATION,
            attributes=attributes,
        )
    )
    provider.shutdown()
    return list(memory.get_finished_logs())


def test_a_log_record_parented_to_a_span_annotates_it_its_turn_and_thread_once(collector):
    ids = app_spans(collector)
    assert sql(collector, "SELECT turn_count FROM threads") == [(1,)]
    # the judge's verdict arrives after the thread was derived, and is delivered twice
    batch = evaluation_records(
        {
            "gen_ai.evaluation.name": "relevance",
            "gen_ai.evaluation.score.value": 0.25,
            "gen_ai.evaluation.score.label": "not_relevant",
            "gen_ai.evaluation.explanation": "answers another question",
        },
        trace_id=ids["trace_int"],
        span_id=ids["call_int"],
    )
    for exporter in (
        GrpcLogs(endpoint=collector.endpoints.grpc, insecure=True),
        HttpLogs(endpoint=f"{collector.endpoints.http}/v1/logs"),
    ):
        assert exporter.export(batch).name == "SUCCESS"
        exporter.shutdown()
    expected = (
        "t",
        ids["turn"],
        ids["call"],
        "relevance",
        "not_relevant",
        0.25,
        "answers another question",
        "otlp",
        "judge",
    )
    assert sql(collector, f"SELECT {COLUMNS} FROM annotations") == [expected]
    assert sql(collector, "SELECT annotation_count FROM threads") == [(1,)]
    detail = ThreadsClient(collector.endpoints.api).thread("t")
    assert [(a.turn_id, a.name, a.score) for a in detail.annotations] == [
        (ids["turn"], "relevance", 0.25)
    ]
    assert detail.thread.annotation_count == 1


def test_a_span_event_annotates_the_span_that_carries_it(collector):
    provider = TracerProvider()
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.endpoints.grpc, insecure=True))
    )
    tracer = provider.get_tracer("app")
    with thread("t"), tracer.start_as_current_span("turn") as turn:
        turn.add_event(
            EVALUATION, {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": 1}
        )
        turn.add_event("something else", {"gen_ai.evaluation.name": "not an evaluation"})
        turn_id = format(turn.get_span_context().span_id, "016x")
    provider.shutdown()
    assert sql(
        collector, "SELECT turn_id, span_id, name, label, score, source FROM annotations"
    ) == [(turn_id, turn_id, "tone", None, 1.0, "otlp")]


@pytest.mark.parametrize("evaluation_first", [True, False])
def test_an_evaluation_naming_only_the_response_id_attaches_to_that_call(
    collector, evaluation_first
):
    verdict = {
        "gen_ai.evaluation.name": "correctness",
        "gen_ai.evaluation.score.label": "correct",
        "gen_ai.response.id": "chatcmpl-42",
    }
    logs = GrpcLogs(endpoint=collector.endpoints.grpc, insecure=True)
    if evaluation_first:  # the call's spans come later (a batch exporter's delay)
        assert logs.export(evaluation_records(verdict)).name == "SUCCESS"
        sql(collector, "SELECT 1")
    ids = app_spans(collector, response_id="chatcmpl-42")
    app_spans(collector, response_id="chatcmpl-other", thread_id="other")
    if not evaluation_first:  # the call was derived already: its trace is derived again
        assert sql(collector, "SELECT count(*) FROM threads") == [(2,)]
        assert logs.export(evaluation_records(verdict)).name == "SUCCESS"
    logs.shutdown()
    assert sql(collector, "SELECT thread_id, turn_id, span_id, name, label FROM annotations") == [
        ("t", ids["turn"], ids["call"], "correctness", "correct")
    ]
    assert sql(collector, "SELECT thread_id, annotation_count FROM threads ORDER BY 1") == [
        ("other", 0),
        ("t", 1),
    ]


def test_annotate_on_a_file_and_through_the_api(collector, tmp_path):
    ids = app_spans(collector)
    sql(collector, "SELECT 1")
    api = ThreadsClient(collector.endpoints.api)
    held = ThreadsClient(collector.config.db)  # a held file: through the collector's API
    first = api.annotate("t", "thumbs", label="down", score=0, turn_id=ids["turn"].upper())
    second = held.annotate("t", "note", explanation="asked twice", author="ana")
    rows = sql(
        collector,
        "SELECT annotation_id, turn_id, trace_id, span_id, name, label, score, explanation, "
        "source, author FROM annotations ORDER BY name",
    )
    assert rows == [
        (second, None, None, None, "note", None, None, "asked twice", "api", "ana"),
        (first, ids["turn"], ids["trace"], ids["turn"], "thumbs", "down", 0.0, None, "api", None),
    ]
    detail = api.thread("t")
    assert [a.name for a in detail.annotations] == ["note", "thumbs"]  # the thread's first
    assert detail.thread.annotation_count == 2
    with pytest.raises(ThreadNotFoundError):
        api.annotate("nope", "thumbs", label="up")
    with pytest.raises(KeyError, match="no turn '0000000000000001' in thread 't'"):
        api.annotate("t", "thumbs", label="up", turn_id="0000000000000001")
    for bad, says in (
        ({"name": ""}, "name must be a text"),
        ({"name": "x"}, "needs a label, a score or an explanation"),
        ({"name": "x", "score": float("nan")}, "score must be a finite number"),
        ({"name": "x", "label": "y", "turn_id": "zz"}, "turn_id must be a turn's id"),
    ):
        with pytest.raises(ValueError, match=says):
            api.annotate("t", **bad)
    api.delete_annotation(first)
    with pytest.raises(AnnotationNotFoundError, match="no annotation"):
        api.delete_annotation(first)
    assert [r[0] for r in sql(collector, "SELECT name FROM annotations")] == ["note"]
    # the count kept as annotations come and go is the count a derivation gives
    assert sql(collector, "SELECT annotation_count FROM threads") == [(1,)]
    assert sql(collector, "FROM threads_mat") == sql(collector, "FROM derive_threads")
    # a file nobody holds: the client opens it to write
    collector.stop()
    on_file = ThreadsClient(collector.config.db)
    third = on_file.annotate("t", "thumbs", label="up", score=1)
    assert [(a.name, a.label) for a in on_file.thread("t").annotations] == [
        ("note", None),
        ("thumbs", "up"),
    ]
    on_file.delete_annotation(third)
    with pytest.raises(ThreadNotFoundError):
        on_file.annotate("nope", "thumbs", label="up")
    with pytest.raises(FileNotFoundError):
        ThreadsClient(tmp_path / "missing.duckdb").annotate("t", "thumbs", label="up")
    assert not (tmp_path / "missing.duckdb").exists()


def test_an_annotation_from_otlp_cannot_be_deleted(collector):
    app_spans(collector)
    record = evaluation_records({"gen_ai.evaluation.name": "x", "gen_ai.response.id": "chatcmpl-1"})
    exporter = GrpcLogs(endpoint=collector.endpoints.grpc, insecure=True)
    assert exporter.export(record).name == "SUCCESS"
    exporter.shutdown()
    ((annotation_id,),) = sql(collector, "SELECT annotation_id FROM annotations")
    with pytest.raises(AnnotationNotFoundError, match="came over OTLP"):
        ThreadsClient(collector.endpoints.api).delete_annotation(annotation_id)
    assert sql(collector, "SELECT count(*) FROM annotations") == [(1,)]


def _call(c, method: str, path: str, body: object = None, **headers: str) -> tuple[int, dict]:
    req = urllib.request.Request(
        c.endpoints.api + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_a_write_changes_the_threads_etag_and_needs_the_token_and_the_origin(tmp_path):
    with running(tmp_path / "t.duckdb", token="s3cret") as c:
        app_spans(c, token="s3cret")
        sql(c, "SELECT 1")
        auth = {"Authorization": "Bearer s3cret"}
        req = urllib.request.Request(c.endpoints.api + "/threads/t", headers=auth)
        with urllib.request.urlopen(req, timeout=30) as resp:
            tag = resp.headers["ETag"]
        body = {"name": "thumbs", "label": "down", "score": 0}
        assert _call(c, "POST", "/threads/t/annotations", body)[0] == 401
        status, answer = _call(
            c, "POST", "/threads/t/annotations", body, Origin="http://evil.example", **auth
        )
        assert (status, "refused" in answer["error"]) == (403, True)
        status, _ = _call(
            c, "POST", "/threads/t/annotations", body, **{"Sec-Fetch-Site": "cross-site"}, **auth
        )
        assert status == 403
        assert sql(c, "SELECT count(*) FROM annotations") == [(0,)]
        status, answer = _call(c, "POST", "/threads/t/annotations", {**body, "x": 1}, **auth)
        assert (status, answer["error"]) == (400, answer["error"])
        assert "unknown field(s) ['x']" in answer["error"]
        status, answer = _call(c, "POST", "/threads/t/annotations", body, **auth)
        assert status == 201
        req = urllib.request.Request(
            c.endpoints.api + "/threads/t", headers={**auth, "If-None-Match": tag}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:  # not a 304: it changed
            assert resp.status == 200 and resp.headers["ETag"] != tag
            assert [a["label"] for a in json.loads(resp.read())["annotations"]] == ["down"]
        status, _ = _call(c, "DELETE", f"/annotations/{answer['annotation_id']}", None, **auth)
        assert status == 200
        assert _call(c, "DELETE", "/annotations/x/y", None, **auth)[0] == 404
        with pytest.raises(ThreadsClientError, match="401"):
            ThreadsClient(c.endpoints.api, token="wrong").annotate("t", "n", label="l")


def test_the_command_line_annotates_and_shows_them(collector):
    from click.testing import CliRunner

    from otel_threads.cli import main as cli

    ids = app_spans(collector)
    sql(collector, "SELECT 1")
    db = collector.config.db  # held: the commands go through the collector's API
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["annotate", "t", "--name", "thumbs", "--label", "down", "--turn", ids["turn"], "--db", db],
    )
    assert out.exit_code == 0, out.output
    annotation_id = out.output.strip()
    assert sql(collector, "SELECT annotation_id, label FROM annotations") == [
        (annotation_id, "down")
    ]
    shown = runner.invoke(cli, ["show", "t", "--db", db])
    assert "annotations:\n  turn 1: thumbs=down · api" in shown.output
    listed = runner.invoke(cli, ["threads", "--annotation", "thumbs=down", "--json", "--db", db])
    assert [t["annotation_count"] for t in json.loads(listed.output)["threads"]] == [1]
    for args, says in (
        (["nope", "--name", "x", "--label", "y"], "no thread 'nope'"),
        (["t", "--name", "x"], "needs a label, a score or an explanation"),
        (["t", "--name", "x", "--label", "y", "--turn", "0000000000000001"], "no turn"),
    ):
        bad = runner.invoke(cli, ["annotate", *args, "--db", db])
        assert bad.exit_code == 1 and says in bad.output and bad.output.count("\n") == 1, bad.output


def test_a_file_without_the_annotations_view_reads_as_having_none(tmp_path):
    """A file an older otel-threads wrote, read without being opened to write (so not
    migrated), still shows its threads."""
    import duckdb

    from otel_threads.exporter import DuckDBSpanExporter

    path = str(tmp_path / "old.duckdb")
    provider = TracerProvider()
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(DuckDBSpanExporter(path)))
    with thread("t"), provider.get_tracer("app").start_as_current_span("turn"):
        pass
    provider.shutdown()
    with duckdb.connect(path) as con:
        con.execute("DROP VIEW annotations")
    detail = ThreadsClient(path).thread("t")
    assert (detail.thread.turn_count, detail.annotations) == (1, [])


def test_a_thread_just_acknowledged_can_be_annotated_at_once(collector):
    """The write waits for derivation to catch up, as a read does, before a 404."""
    for i in range(5):
        ids = app_spans(collector, thread_id=f"fresh-{i}")
        client = ThreadsClient(collector.endpoints.api)
        client.annotate(f"fresh-{i}", "thumbs", label="up", turn_id=ids["turn"])
    assert sql(collector, "SELECT count(*) FROM annotations") == [(5,)]
