"""The collector's receivers, through real OTLP exporters and raw requests.

Each test gets its own collector on ephemeral loopback ports, writing a DuckDB
file in tmp_path; it runs in this process (decode inline) for speed. The process
level promises (kill -9, signals, overload, TLS) are in test_collector_process.py.
"""

from __future__ import annotations

import gzip
import json
import re
import time
import urllib.error
import urllib.request

import duckdb
import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans as encode_json
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link

from otel_threads import ThreadSpanProcessor, thread
from otel_threads.collector import Collector
from otel_threads.collector.testing import running
from otel_threads.testing import SequentialIdGenerator

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
ANY = ("127.0.0.1", 0)


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "c.duckdb", max_request_bytes=1 << 20) as c:
        yield c


def rows(c: Collector, sql: str) -> list[tuple]:
    with c.store.cursor() as cur:
        return cur.execute(sql).fetchall()


def make_spans(service: str = "svc", first_span_id: int = 1):
    """A turn with a child, an event and a link, in thread 't'; ids are sequential."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "k.int": 7}),
        id_generator=SequentialIdGenerator(first_span_id),
    )
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope.one", "1.2", attributes={"scope.attr": "x"})
    with thread("t"), tracer.start_as_current_span("turn") as turn:
        turn.add_event("hello", {"n": 1})
        with tracer.start_as_current_span(
            "child", links=[Link(turn.get_span_context(), {"why": "because"})]
        ):
            pass
    provider.shutdown()
    return exporter.get_finished_spans()


@pytest.mark.parametrize("transport", ["grpc", "grpc+gzip", "http", "http+gzip", "http+json"])
def test_standard_exporters_deliver_spans_unchanged(collector, transport):
    spans = make_spans()
    ep = collector.endpoints
    if transport.startswith("grpc"):
        comp = GrpcCompression.Gzip if "gzip" in transport else GrpcCompression.NoCompression
        exporter = GrpcSpans(endpoint=ep.grpc, insecure=True, compression=comp)
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()
    elif transport == "http+json":
        body = encode_json(spans).to_json().encode()
        req = urllib.request.Request(
            f"{ep.http}/v1/traces", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert json.loads(resp.read()) == {}
    else:
        comp = HttpCompression.Gzip if "gzip" in transport else HttpCompression.NoCompression
        exporter = HttpSpans(endpoint=f"{ep.http}/v1/traces", compression=comp)
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()
    got = rows(
        collector,
        """
        SELECT name, span_id, parent_span_id, kind, thread_id, turn_id, is_turn, service_name,
               scope_name, scope_version, scope_attributes->>'scope.attr',
               resource_attributes->'k.int', events->0->>'name', events->0->'attributes'->'n',
               links->0->>'span_id', links->0->'attributes'->>'why', status_code
        FROM spans ORDER BY span_id""",
    )
    one, two = format(1, "016x"), format(2, "016x")
    assert got == [
        (
            "turn",
            one,
            None,
            "INTERNAL",
            "t",
            one,
            True,
            "svc",
            "scope.one",
            "1.2",
            "x",
            "7",
            "hello",
            "1",
            None,
            None,
            "UNSET",
        ),
        (
            "child",
            two,
            one,
            "INTERNAL",
            "t",
            one,
            None,
            "svc",
            "scope.one",
            "1.2",
            "x",
            "7",
            None,
            None,
            one,
            "because",
            "UNSET",
        ),
    ]


def test_log_records_keep_their_span_link_event_name_and_body(collector):
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "llm-app"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("gen").emit(
        LogRecord(
            trace_id=0xABC,
            span_id=0xDEF,
            trace_flags=1,
            event_name="gen_ai.user.message",
            body={"content": "hi", "n": 2},
            attributes={"gen_ai.system": "openai"},
        )
    )
    provider.shutdown()
    batch = memory.get_finished_logs()
    ep = collector.endpoints
    for exporter in (
        GrpcLogs(endpoint=ep.grpc, insecure=True),
        HttpLogs(endpoint=f"{ep.http}/v1/logs"),
    ):
        assert exporter.export(batch).name == "SUCCESS"
        exporter.shutdown()
    got = rows(
        collector,
        "SELECT trace_id, span_id, event_name, body, "
        "attributes->>'gen_ai.system', service_name FROM logs",
    )
    # the same record sent over gRPC and again over HTTP is stored once
    assert got == [
        (
            format(0xABC, "032x"),
            format(0xDEF, "016x"),
            "gen_ai.user.message",
            '{"content":"hi","n":2}',
            "openai",
            "llm-app",
        )
    ]
    assert collector.writer.stats.duplicates["logs"] == 1


def test_redelivery_changes_nothing(collector):
    spans = make_spans()
    exporter = GrpcSpans(endpoint=collector.endpoints.grpc, insecure=True)
    for _ in range(3):
        assert exporter.export(spans).name == "SUCCESS"
    exporter.shutdown()
    assert rows(collector, "SELECT count(*), count(*) FILTER (WHERE is_turn) FROM spans") == [
        (2, 1)
    ]
    assert collector.writer.stats.duplicates["spans"] == 4


def post(
    url: str, body: bytes, content_type: str = "application/x-protobuf", headers: dict | None = None
) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def bad_ids_request() -> bytes:
    req = encode_spans(make_spans())
    (turn,) = [s for s in req.resource_spans[0].scope_spans[0].spans if s.name == "turn"]
    turn.span_id = b"\x01\x02"  # 2 bytes: malformed
    return req.SerializeToString()


def test_http_bad_input_gets_the_otlp_answer_and_never_a_crash(collector):
    url = f"{collector.endpoints.http}/v1/traces"
    status, _, body = post(url, b"\xff\xfe not protobuf")
    assert status == 400 and status_pb2.Status.FromString(body).code == 3
    status, _, body = post(url, b"{not json", "application/json")
    assert status == 400 and "message" in json.loads(body)
    assert post(url, b"x", "text/plain")[0] == 415
    assert post(url, b"x", headers={"Content-Encoding": "br"})[0] == 415
    assert post(url, b"not gzip", headers={"Content-Encoding": "gzip"})[0] == 400
    bomb = gzip.compress(b"\0" * (5 << 20))  # 5 MiB of zeros in ~5 KiB, limit is 1 MiB
    status, _, body = post(url, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and b"inflates to more than" in body
    assert post(url, b"\0" * ((1 << 20) + 1))[0] == 413
    assert post(f"{collector.endpoints.http}/v2/nothing", b"")[0] == 404
    # malformed ids: that span is rejected, the rest of the request is stored
    status, _, body = post(url, bad_ids_request())
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert status == 200 and resp.partial_success.rejected_spans == 1
    assert "span_id" in resp.partial_success.error_message
    assert rows(collector, "SELECT name FROM spans") == [("child",)]
    # still serving
    assert post(url, encode_spans(make_spans(first_span_id=10)).SerializeToString())[0] == 200


def test_grpc_bad_input_gets_the_otlp_answer(collector):
    with grpc.insecure_channel(collector.endpoints.grpc.split("://")[1]) as channel:
        call = channel.unary_unary(
            TRACE_METHOD, request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as err:
            call(b"\xff\xfe not protobuf", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            call(b"\0" * ((1 << 20) + 10), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        resp = trace_service_pb2.ExportTraceServiceResponse.FromString(
            call(bad_ids_request(), timeout=10)
        )
        assert resp.partial_success.rejected_spans == 1
    assert rows(collector, "SELECT name FROM spans") == [("child",)]


def test_healthz_and_metrics(collector):
    GrpcSpans(endpoint=collector.endpoints.grpc, insecure=True).export(make_spans())
    post(f"{collector.endpoints.http}/v1/traces", b"garbage")
    with urllib.request.urlopen(f"{collector.endpoints.api}/healthz", timeout=10) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}  # no path: it needs no token
        assert "Server" not in resp.headers  # nor the Python or server version
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{collector.endpoints.http}/v1/traces", timeout=10)
    with refused.value as answer:
        assert answer.code == 405 and "Server" not in answer.headers
    with urllib.request.urlopen(f"{collector.endpoints.api}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert 'otel_threads_written_total{signal="spans"} 2' in text
    assert 'otel_threads_received_total{signal="spans"} 2' in text
    assert "otel_threads_invalid_requests_total 1" in text
    assert "otel_threads_queue_rows 0" in text
    assert "otel_threads_commit_seconds_count 1" in text
    deadline = time.monotonic() + 60  # the writer checkpoints once idle for 1 s

    def cpu(part: str) -> float:
        found = re.search(rf'^otel_threads_cpu_seconds_total{{part="{part}"}} (\S+)$', text, re.M)
        assert found, text
        return float(found.group(1))

    while (
        "otel_threads_checkpoint_seconds_count 0" in text
        or "otel_threads_derived_traces_total 0" in text
        or not cpu("writer")
        or not cpu("derive")
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
        with urllib.request.urlopen(f"{collector.endpoints.api}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    assert re.search(r"^otel_threads_checkpoint_seconds_count [1-9]", text, re.M), text
    # the CPU the writer's commits and derivation's refresh took, and the rest of the
    # process (the receivers, the API); the decode workers only with parse processes
    assert cpu("writer") > 0 and cpu("derive") > 0 and cpu("other") > 0, text
    assert re.search(r"^otel_threads_checkpoint_max_seconds [0-9.e-]+$", text, re.M)
    # the indexes, measured after the commit (what the store's spans_raw index took), and
    # DuckDB's limit (auto: the default, not raised for so little)
    held = re.search(r"^otel_threads_index_memory_bytes (\d+)$", text, re.M)
    assert held and int(held.group(1)) > 0, text
    assert f"otel_threads_memory_limit_bytes {512 << 20}\n" in text, text
    # a few refreshes: far from the derivation after which the store is opened again
    assert "otel_threads_store_reopen_seconds_count 0\n" in text, text
    # derivation's refreshes: one at least, and every stored trace derived by them
    ((traces,),) = rows(collector, "SELECT count(DISTINCT trace_id) FROM spans")
    assert f"otel_threads_derived_traces_total {traces}\n" in text, text
    assert re.search(r"^otel_threads_derive_refresh_seconds_count [1-9]", text, re.M), text
    assert re.search(r"^otel_threads_derive_refresh_seconds_sum [0-9.e-]+$", text, re.M)


def test_schema_is_applied_by_numbered_migrations_recorded_in_the_file(tmp_path):
    from otel_threads.store import connect

    path = str(tmp_path / "m.duckdb")
    con = connect(path)
    applied = con.execute(
        "SELECT version, name FROM otel_threads_migrations ORDER BY version"
    ).fetchall()
    assert applied[:2] == [(1, "raw_tables"), (2, "derive_queue")]
    assert [v for v, _ in applied] == list(range(1, len(applied) + 1))
    con.close()
    con = connect(path)  # nothing applied twice
    assert con.execute("SELECT count(*) FROM otel_threads_migrations").fetchone() == (len(applied),)
    con.close()
    ro = duckdb.connect(path, read_only=True)
    assert {r[0] for r in ro.execute("SHOW TABLES").fetchall()} >= {"spans", "logs"}
    ro.close()


def test_embedded_exporters_write_the_same_schema(tmp_path):
    import otel_threads

    path = str(tmp_path / "embedded.duckdb")
    setup = otel_threads.configure(
        db=path, service_name="notebook", project="proj", set_global=False
    )
    tracer = setup.tracer_provider.get_tracer("nb")
    with thread("t"), tracer.start_as_current_span("turn"):
        setup.logger_provider.get_logger("nb").emit(
            LogRecord(event_name="gen_ai.choice", body={"index": 0})
        )
    setup.shutdown()
    con = duckdb.connect(path, read_only=True)
    assert con.execute(
        "SELECT name, thread_id, is_turn, service_name, project FROM spans"
    ).fetchall() == [("turn", "t", True, "notebook", "proj")]
    assert con.execute("SELECT event_name, body, trace_id IS NOT NULL FROM logs").fetchall() == [
        ("gen_ai.choice", '{"index":0}', True)
    ]


def test_a_span_repeated_inside_one_request_is_stored_once(collector):
    req = encode_spans(make_spans())
    req.resource_spans.append(req.resource_spans[0])  # every span twice in one request
    status, _, _ = post(f"{collector.endpoints.http}/v1/traces", req.SerializeToString())
    assert status == 200
    assert rows(collector, "SELECT name, count(*) FROM spans GROUP BY name ORDER BY name") == [
        ("child", 1),
        ("turn", 1),
    ]
