"""The OTLP decode step, through its public functions (otel_threads.otlp.decode).

Requests come from the real SDK encoder (TracerProvider + InMemorySpanExporter +
encode_spans, fixed ids and clocks) or are built by hand with the OTLP messages;
OTLP/JSON is produced from the same messages, so each test can check that the
protobuf, parsed-message and JSON paths give the same rows.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from datetime import datetime

import duckdb
import pytest
from anyvalue import set_value
from google.protobuf import json_format, message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from otel_threads.otlp.decode import (
    LOG_SCHEMA,
    SPAN_SCHEMA,
    DecodedBatch,
    DecodeError,
    decode_logs_json,
    decode_logs_protobuf,
    decode_logs_request,
    decode_traces_json,
    decode_traces_protobuf,
    decode_traces_request,
)

T0 = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC
TRACE_ID = bytes(range(1, 17))
SPAN_JSON_COLUMNS = ("attributes", "events", "links", "resource_attributes", "scope_attributes")
LOG_JSON_COLUMNS = ("body", "attributes", "resource_attributes")


THREAD_KEYS = [
    "gen_ai.conversation.id",
    "session.id",
    "langfuse.session.id",
    "traceloop.association.properties.session_id",
    "langsmith.metadata.thread_id",
    "langsmith.metadata.session_id",
    "langsmith.metadata.conversation_id",
    "ai.telemetry.metadata.sessionId",
    "ai.settings.context.sessionId",
    "ai.settings.context.conversationId",
    "ai.settings.context.threadId",
    "gcp.vertex.agent.session_id",
    "mlflow.trace.session",
    "wandb.thread_id",
]


# --- helpers ---------------------------------------------------------------------


class SequentialIds(IdGenerator):
    """Fixed ids: trace ids 0x...01, 0x...02; span ids 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.traces = 0
        self.spans = 0

    def generate_trace_id(self) -> int:
        self.traces += 1
        return (0xABC << 100) + self.traces

    def generate_span_id(self) -> int:
        self.spans += 1
        return self.spans


def sdk_request(build, resource: dict | None = None) -> ExportTraceServiceRequest:
    """Run build(tracer) on a real TracerProvider and encode what it exported."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource(resource or {"service.name": "support-bot"}), id_generator=SequentialIds()
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("app.scope", "1.2.3"))
    provider.shutdown()
    return encode_spans(exporter.get_finished_spans())


def to_json(request, *, enum_names: bool = False, snake_case: bool = False) -> bytes:
    """OTLP/JSON of a request: protobuf's JSON mapping with the ids as hex, not base64."""
    data = json_format.MessageToDict(
        request, use_integers_for_enums=not enum_names, preserving_proto_field_name=snake_case
    )
    id_keys = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}

    def fix(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in id_keys and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(data)
    return json.dumps(data).encode()


def all_paths(request) -> list[DecodedBatch]:
    """The request decoded by every function that takes it (protobuf, message, JSON)."""
    if isinstance(request, ExportLogsServiceRequest):
        return [
            decode_logs_protobuf(request.SerializeToString()),
            decode_logs_request(request),
            decode_logs_json(to_json(request)),
            decode_logs_json(to_json(request, enum_names=True, snake_case=True)),
        ]
    return [
        decode_traces_protobuf(request.SerializeToString()),
        decode_traces_request(request),
        decode_traces_json(to_json(request)),
        decode_traces_json(to_json(request, enum_names=True, snake_case=True)),
    ]


def rows_of(request) -> list[dict]:
    """Rows of the request, after checking that every decode path gives the same ones."""
    batches = all_paths(request)
    rows = batches[0].table.to_pylist()
    for batch in batches[1:]:
        assert batch.table.to_pylist() == rows
        assert (batch.accepted, batch.rejected, batch.error) == (
            batches[0].accepted,
            batches[0].rejected,
            batches[0].error,
        )
    return rows


def expected_value(value: object) -> object:
    """The documented JSON encoding of set_value's input (written independently)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {
            "$double": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [expected_value(item) for item in value]
    if isinstance(value, tuple):
        return expected_attributes(value[1])
    return value


def expected_attributes(pairs) -> dict:
    out = {}
    for key, value in pairs:
        out[("$" + key) if key.startswith("$") else key] = expected_value(value)
    return out


def compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def one_span_request(
    attributes=(), *, resource=(("service.name", "svc"),), **span_fields
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in resource:
        set_value(resource_spans.resource.attributes.add(key=key).value, value)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "scope"
    fields = {
        "trace_id": TRACE_ID,
        "span_id": b"\x00\x00\x00\x00\x00\x00\x00\x07",
        "name": "op",
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 2_500_000,
    }
    span = scope_spans.spans.add(**{**fields, **span_fields})
    for key, value in attributes:
        set_value(span.attributes.add(key=key).value, value)
    return request


def attributes_of(request) -> str:
    (row,) = rows_of(request)
    return row["attributes"]


def check_json_columns(batch: DecodedBatch, columns=SPAN_JSON_COLUMNS) -> None:
    for column in columns:
        for text in batch.table.column(column).to_pylist():
            if text is not None:
                json.loads(text)


# --- SDK spans -> rows -------------------------------------------------------------


def test_sdk_spans_become_whole_rows():
    def build(tracer):
        root = tracer.start_span(
            "POST /chat", kind=trace.SpanKind.SERVER, start_time=T0,
            attributes={"gen_ai.conversation.id": "support_thread_42", "otel_threads.is_turn": True,
                        "otel_threads.turn_id": "0000000000000001"},
        )  # fmt: skip
        child = tracer.start_span(
            "chat gpt-4o", context=trace.set_span_in_context(root), kind=trace.SpanKind.CLIENT,
            start_time=T0 + 1_000, attributes={"gen_ai.usage.input_tokens": 12, "temperature": 0.5,
                                                "gen_ai.conversation.id": "support_thread_42",
                                                "otel_threads.turn_id": "0000000000000001"},
        )  # fmt: skip
        child.add_event("gen_ai.choice", {"index": 0}, timestamp=T0 + 2_000)
        child.set_status(trace.StatusCode.ERROR, "rate limited")
        child.end(end_time=T0 + 1_501_000)
        root.end(end_time=T0 + 3_000_000)

    request = sdk_request(build, {"service.name": "support-bot", "openinference.project.name": "p"})
    rows = rows_of(request)
    assert [row["name"] for row in rows] == ["chat gpt-4o", "POST /chat"]
    assert rows[0] == {
        "trace_id": "0000abc0000000000000000000000001",
        "span_id": "0000000000000002",
        "parent_span_id": "0000000000000001",
        "trace_state": None,
        "name": "chat gpt-4o",
        "kind": "CLIENT",
        "start_time": datetime(2023, 11, 14, 22, 13, 20, 1),
        "end_time": datetime(2023, 11, 14, 22, 13, 20, 1501),
        "start_time_unix_nano": T0 + 1_000,
        "end_time_unix_nano": T0 + 1_501_000,
        "duration_ms": 1.5,
        "status_code": "ERROR",
        "status_message": "rate limited",
        "service_name": "support-bot",
        "project": "p",
        "attributes": '{"gen_ai.usage.input_tokens":12,"temperature":0.5,'
        '"gen_ai.conversation.id":"support_thread_42","otel_threads.turn_id":"0000000000000001"}',
        "events": '[{"time_unix_nano":1700000000000002000,"name":"gen_ai.choice",'
        '"attributes":{"index":0},"dropped_attributes_count":0}]',
        "links": "[]",
        "resource_attributes": '{"service.name":"support-bot","openinference.project.name":"p"}',
        "scope_name": "app.scope",
        "scope_version": "1.2.3",
        "scope_attributes": "{}",
        "flags": 256,
        "dropped_attributes_count": 0,
        "dropped_events_count": 0,
        "dropped_links_count": 0,
        "thread_id": "support_thread_42",
        "turn_id": "0000000000000001",
        "is_turn": None,
        "previous_turn_id": None,
    }
    assert rows[1]["is_turn"] is True
    assert rows[1]["parent_span_id"] is None
    assert rows[1]["kind"] == "SERVER"


def test_batch_counts_schema_and_empty_request():
    request = sdk_request(lambda tracer: [tracer.start_span(f"s{i}").end() for i in range(3)])
    batch = decode_traces_protobuf(request.SerializeToString())
    assert (batch.accepted, batch.rejected, batch.error) == (3, 0, None)
    assert batch.table.schema == SPAN_SCHEMA
    for empty in (b"", to_json(ExportTraceServiceRequest()), b"{}"):
        decode = decode_traces_json if empty.startswith(b"{") else decode_traces_protobuf
        batch = decode(empty)
        assert (batch.accepted, batch.rejected, batch.table.num_rows) == (0, 0, 0)
        assert batch.table.schema == SPAN_SCHEMA
    assert decode_logs_protobuf(b"").table.schema == LOG_SCHEMA


def test_links_and_many_scopes_keep_their_resource_and_scope():
    request = ExportTraceServiceRequest()
    for r in range(2):
        resource_spans = request.resource_spans.add()
        set_value(resource_spans.resource.attributes.add(key="service.name").value, f"svc{r}")
        for s in range(2):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = f"scope{r}{s}"
            set_value(scope_spans.scope.attributes.add(key="lib").value, s)
            for i in range(s + 1):
                span = scope_spans.spans.add(
                    trace_id=TRACE_ID, span_id=bytes([0] * 7 + [10 * r + 3 * s + i + 1]), name="x"
                )
                link = span.links.add(trace_id=TRACE_ID, span_id=b"\x01" * 8, trace_state="k=v")
                link.flags = 1
                set_value(link.attributes.add(key="why").value, "retry")
    rows = rows_of(request)
    assert [(row["service_name"], row["scope_name"], row["scope_attributes"]) for row in rows] == [
        ("svc0", "scope00", '{"lib":0}'),
        ("svc0", "scope01", '{"lib":1}'),
        ("svc0", "scope01", '{"lib":1}'),
        ("svc1", "scope10", '{"lib":0}'),
        ("svc1", "scope11", '{"lib":1}'),
        ("svc1", "scope11", '{"lib":1}'),
    ]
    assert json.loads(rows[0]["links"]) == [
        {
            "trace_id": TRACE_ID.hex(),
            "span_id": "0101010101010101",
            "trace_state": "k=v",
            "attributes": {"why": "retry"},
            "dropped_attributes_count": 0,
            "flags": 1,
        }
    ]
    assert rows[0]["end_time"] is None and rows[0]["duration_ms"] is None  # end time unset


# --- attribute encoding ------------------------------------------------------------


def test_every_anyvalue_kind_survives_and_stays_distinguishable():
    pairs = [
        ("string", "1"),
        ("int", 1),
        ("double", 1.0),
        ("bool", True),
        ("bytes", b"\x00\xff1"),
        ("empty", None),
        ("negative", -(2**63)),
        ("large", 2**63 - 1),
        ("small double", 1e-300),
        ("big double", 1e300),
        ("nan", math.nan),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("array", ["1", 1, 1.0, True, None, [b"x"]]),
        ("kvlist", ("kv", [("a", 1), ("$bytes", "not a tag"), ("nested", ("kv", [("b", [])]))])),
        ("$double", "user key that looks like a tag"),
        ("unicode", "héllo wörld ✓ 中文 \U0001f600"),
        ("escapes", 'quote " backslash \\ newline \n tab \t nul \x00 del \x7f'),
    ]
    text = attributes_of(one_span_request(pairs))
    assert text == compact(expected_attributes(pairs))
    assert '"double":1.0' in text and '"int":1,' in text and '"string":"1"' in text
    assert '"$$double":"user key' in text and '"$$bytes":"not a tag"' in text
    assert '"nan":{"$double":"NaN"}' in text and '"-inf":{"$double":"-Infinity"}' in text
    assert "héllo wörld ✓ 中文 \U0001f600" in text  # non-ASCII is kept as is


def test_json_input_accepts_spec_number_and_double_forms():
    attributes = [
        {"key": "a", "value": {"intValue": "9007199254740993"}},
        {"key": "b", "value": {"intValue": 7}},
        {"key": "c", "value": {"doubleValue": "NaN"}},
        {"key": "d", "value": {"doubleValue": "-Infinity"}},
        {"key": "e", "value": {"doubleValue": 3}},
        {"key": "f", "value": {"bytesValue": "_-8"}},  # URL-safe base64, no padding
        {"key": "g", "value": None},
        {"key": "h", "value": {}},
        {"key": "i", "value": {"arrayValue": {}}},
        {"key": "k", "value": {"stringValue": "first"}},
        {"key": "k", "value": {"stringValue": "last wins"}},
    ]
    request = {
        "resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": TRACE_ID.hex().upper(), "spanId": "00000000000000FF", "name": "n",
            "kind": "SPAN_KIND_PRODUCER", "startTimeUnixNano": str(T0), "endTimeUnixNano": T0,
            "status": {"code": 1}, "attributes": attributes,
        }]}]}]
    }  # fmt: skip
    (row,) = decode_traces_json(json.dumps(request).encode()).table.to_pylist()
    assert row["trace_id"] == TRACE_ID.hex() and row["span_id"] == "00000000000000ff"
    assert (row["kind"], row["status_code"], row["duration_ms"]) == ("PRODUCER", "OK", 0.0)
    assert json.loads(row["attributes"]) == {
        "a": 9007199254740993,
        "b": 7,
        "c": {"$double": "NaN"},
        "d": {"$double": "-Infinity"},
        "e": 3.0,
        "f": {"$bytes": "/+8="},
        "g": None,
        "h": None,
        "i": [],
        "k": "last wins",
    }
    assert '"e":3.0' in row["attributes"]


def test_json_columns_are_valid_duckdb_json():
    pairs = [("nan", math.nan), ("s", 'x"\\\n\x01'), ("b", b"\x00"), ("l", [1.5, None, "é"])]
    request = one_span_request(pairs)
    request.resource_spans[0].scope_spans[0].spans[0].events.add(name="e").attributes.add(key="x")
    batch = decode_traces_protobuf(request.SerializeToString())
    connection = duckdb.connect()
    connection.register("spans", batch.table)
    checks = ", ".join(f"json_valid({column})" for column in SPAN_JSON_COLUMNS)
    assert connection.sql(f"select {checks} from spans").fetchall() == [(True,) * 5]
    assert connection.sql("select attributes->>'$.s' from spans").fetchall() == [('x"\\\n\x01',)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(["a", "gen_ai.conversation.id", "$x", "k" * 130]), st.text()),
            st.recursive(
                st.one_of(
                    st.none(),
                    st.booleans(),
                    st.integers(-(2**63), 2**63 - 1),
                    st.integers(0, 20000),
                    st.floats(),
                    st.text(),
                    st.text(alphabet='ab"\\$\x01é', max_size=5),
                    st.text(min_size=120, max_size=20000).filter(lambda s: len(s) < 20000),
                    st.binary(max_size=10),
                ),
                lambda children: st.one_of(
                    st.lists(children, max_size=3),
                    st.lists(st.tuples(st.text(max_size=3), children), max_size=3).map(
                        lambda pairs: ("kv", pairs)
                    ),
                ),
                max_leaves=6,
            ),
        ),
        max_size=8,
    )
)
def test_protobuf_and_json_encode_any_attributes_alike(pairs):
    """The protobuf reader's fast path, its generic path and the JSON reader agree."""
    assert attributes_of(one_span_request(pairs)) == compact(expected_attributes(pairs))


def expected_derived(pairs) -> tuple:
    """The derived columns, computed independently from (key, value) pairs."""
    attrs = dict(pairs)
    text = lambda key: attrs.get(key) if isinstance(attrs.get(key), str) and attrs[key] else None  # noqa: E731
    thread = next((text(key) for key in THREAD_KEYS if text(key)), None)
    if thread and len(thread) > 2 and thread[0] == thread[-1] == '"':  # a JSON string literal
        with contextlib.suppress(ValueError):
            literal = json.loads(thread)
            thread = literal if isinstance(literal, str) and literal else thread
    flags = [attrs.get(key) for key in ("otel_threads.is_turn", "wandb.is_turn")]
    is_turn = next((flag for flag in flags if isinstance(flag, bool)), None)
    return thread, text("otel_threads.turn_id"), is_turn, text("otel_threads.previous_turn_id")


TURN_KEYS = ["otel_threads.turn_id", "otel_threads.is_turn", "wandb.is_turn"]
SIMPLE_TEXT = st.text(alphabet="abc xyz-é中.", max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                SIMPLE_TEXT, st.sampled_from([*THREAD_KEYS[:3], *TURN_KEYS, "$k", "k" * 200])
            ),
            st.one_of(
                SIMPLE_TEXT,
                st.text(alphabet="abc xyz-é中.", min_size=100, max_size=300),
                st.integers(0, 20000),
                st.booleans(),
                st.floats(),
                st.sampled_from(
                    [
                        "$x",
                        'a"b',
                        "a\\b",
                        "\x01",
                        -1,
                        2**40,
                        b"x",
                        None,
                        '"q"',
                        '""',
                        '"\\u00e9 x"',
                        '"a"b"',
                        '"\\"',
                    ]
                ),
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fast_path_attributes_and_derived_columns(pairs):
    """Mostly plain strings, ints, bools, doubles: the protobuf fast path's territory."""
    (row,) = rows_of(one_span_request(pairs))
    assert row["attributes"] == compact(expected_attributes(pairs))
    assert (row["thread_id"], row["turn_id"], row["is_turn"], row["previous_turn_id"]) == (
        expected_derived(pairs)
    )


# --- derived columns ---------------------------------------------------------------


def derived(pairs) -> tuple:
    (row,) = rows_of(one_span_request(pairs))
    return row["thread_id"], row["turn_id"], row["is_turn"], row["previous_turn_id"]


@pytest.mark.parametrize("index", range(len(THREAD_KEYS)))
def test_thread_id_is_the_first_present_key_in_priority_order(index):
    lower = [(key, f"t-{key}") for key in THREAD_KEYS[index + 1 :]]
    not_strings = ["", 5, True, ["x"], None] * 3  # higher priority keys without a usable value
    ignored = [(THREAD_KEYS[j], not_strings[j]) for j in range(index)]
    pairs = [*lower, (THREAD_KEYS[index], f"t-{THREAD_KEYS[index]}"), *ignored]
    assert derived(pairs)[0] == f"t-{THREAD_KEYS[index]}"


def test_a_thread_id_that_is_a_json_string_literal_is_decoded():
    """MLflow JSON-encodes its span attributes: session.id arrives as '"abc"'."""
    assert derived([("session.id", '"abc"')])[0] == "abc"
    assert derived([("session.id", '"caf\\u00e9 \\"42\\""')])[0] == 'café "42"'
    for kept in ('""', '"a"b"', '"', 'x"', '"["a"]', "plain"):
        assert derived([("session.id", kept)])[0] == kept


def test_turn_columns():
    assert derived([]) == (None, None, None, None)
    assert derived([("otel_threads.turn_id", "ab"), ("otel_threads.previous_turn_id", "cd")]) == (
        None, "ab", None, "cd",
    )  # fmt: skip
    assert derived([("wandb.is_turn", False)])[2] is False
    assert derived([("wandb.is_turn", True), ("otel_threads.is_turn", False)])[2] is False
    assert derived([("otel_threads.is_turn", "true"), ("wandb.is_turn", True)])[2] is True
    assert derived([("otel_threads.is_turn", 1)])[2] is None
    assert derived([("otel_threads.turn_id", 12), ("otel_threads.previous_turn_id", "")]) == (
        None, None, None, None,
    )  # fmt: skip
    # a value that needs JSON escaping sends the span through the generic path
    assert derived([("session.id", 'a"b'), ("otel_threads.is_turn", True)]) == (
        'a"b', None, True, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "service", "project"),
    [
        ({"service.name": "s"}, "s", "s"),
        ({"service.name": "s", "openinference.project.name": "oi"}, "s", "oi"),
        ({"service.name": "s", "openinference.project.name": "oi", "otel_threads.project": "p"},
         "s", "p"),
        ({"otel_threads.project": "", "openinference.project.name": "oi"}, None, "oi"),
        ({"service.name": 5}, None, None),
        ({}, None, None),
    ],
)  # fmt: skip
def test_service_name_and_project_fallback(resource, service, project):
    (row,) = rows_of(one_span_request(resource=list(resource.items())))
    assert (row["service_name"], row["project"]) == (service, project)


# --- rejected spans ------------------------------------------------------------------


def test_spans_with_invalid_ids_are_rejected_and_the_rest_kept():
    request = one_span_request()
    spans = request.resource_spans[0].scope_spans[0].spans
    good = spans[0]
    bad = [
        {"trace_id": b""},
        {"trace_id": b"\x01" * 15},
        {"trace_id": bytes(16)},
        {"span_id": b"\x01" * 9},
        {"span_id": bytes(8)},
        {"parent_span_id": b"\x01\x02\x03"},
        {"start_time_unix_nano": 2**64 - 1},
    ]
    for fields in bad:
        span = spans.add()
        span.CopyFrom(good)
        for key, value in fields.items():
            setattr(span, key, value)
    kept = spans.add()
    kept.CopyFrom(good)
    kept.parent_span_id = bytes(8)  # all-zero parent: no parent
    kept.span_id = b"\x00" * 7 + b"\x08"
    for batch in all_paths(request):
        assert (batch.accepted, batch.rejected) == (2, 7)
        assert batch.table.column("span_id").to_pylist() == ["0000000000000007", "0000000000000008"]
        assert batch.table.column("parent_span_id").to_pylist() == [None, None]
        assert batch.error.startswith(
            "7 spans rejected: span 1 of scope 'scope': trace_id must be 16"
        )
        assert batch.error.endswith("; ...")


def test_json_span_with_non_hex_id_is_rejected():
    span = {"spanId": "0000000000000001", "name": "ok", "traceId": TRACE_ID.hex()}
    spans = [span, {**span, "traceId": "zz" * 16}, {**span, "spanId": "01" * 8 + "0"}]
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    batch = decode_traces_json(body)
    assert (batch.accepted, batch.rejected) == (1, 2)
    assert batch.error == (
        "2 spans rejected: span 1 of scope '': trace_id must be a hex string, "
        "got 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'; "
        "span 2 of scope '': span_id must be a hex string, got '01010101010101010'"
    )


def test_out_of_range_counts_are_clamped():
    request = one_span_request(dropped_attributes_count=2**32 - 1, flags=2**32 - 1)
    (row,) = rows_of(request)
    assert (row["dropped_attributes_count"], row["flags"]) == (2**31 - 1, 2**32 - 1)


# --- undecodable requests ----------------------------------------------------------

VALID = one_span_request([("a", "b")]).SerializeToString()


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff",
        b"hello world",
        VALID[:-3],
        VALID[:20],
        b"\x0a\x05abc",
        b"\x08" + b"\xff" * 11,
    ],
)
def test_garbage_protobuf_is_a_decode_error(data):
    with pytest.raises(DecodeError, match="request is not valid OTLP protobuf"):
        decode_traces_protobuf(data)
    with pytest.raises(DecodeError):
        decode_logs_protobuf(data)


def spans_json(*spans: str) -> bytes:
    """An OTLP/JSON trace request holding the given span objects (JSON text)."""
    return ('{"resourceSpans":[{"scopeSpans":[{"spans":[' + ",".join(spans) + "]}]}]}").encode()


def attribute_json(value: str) -> bytes:
    return spans_json('{"attributes":[{"key":"a","value":' + value + "}]}")


IDS = f'"traceId":"{TRACE_ID.hex()}","spanId":"0101010101010101"'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid OTLP/JSON: Expecting value"),
        (b'{"resourceSpans": [', "not valid OTLP/JSON"),
        (b"[]", "expected an object, got []"),
        (b'{"resourceSpans": 5}', "request: resourceSpans must be a list, got 5"),
        (spans_json("7"), "resourceSpans[0].scopeSpans[0].spans[0]: span must be an object, got 7"),
        (spans_json('{"name": 5}'), "spans[0]: name must be a string, got 5"),
        (spans_json('{"startTimeUnixNano": "soon"}'), "must be an integer, got 'soon'"),
        (spans_json('{"kind": "SPAN_KIND_NOPE"}'), "kind 'SPAN_KIND_NOPE' is not a known value"),
        (spans_json('{"attributes": {"a": 1}}'), "attributes must be a list"),
        (spans_json('{"attributes": [{"key": 1}]}'), "attribute key must be a string"),
        (spans_json('{"droppedEventsCount": -1}'), "droppedEventsCount -1 is out of range"),
        (attribute_json('{"intValue": 1.5}'), "intValue must be an integer, got 1.5"),
        (attribute_json('{"stringValue": "x", "intValue": 1}'), "must hold one value"),
        (attribute_json('{"bytesValue": "%%%"}'), "bytesValue must be base64"),
        (attribute_json('{"boolValue": "yes"}'), "boolValue must be true or false"),
        (attribute_json('{"arrayValue": {"values": 3}}'), "arrayValue.values must be a list"),
        (attribute_json("[1]"), "a value must be an AnyValue object"),
        (b'{"resourceSpans": [{"resource": {"attributes": 5}}]}', "resourceSpans[0]: attributes"),
        (spans_json('{"name": "X"}').replace(b"X", bytes([0xFF])), "not UTF-8"),
        (spans_json("{" + IDS + ', "name": "\\ud800"}'), "surrogate"),
    ],
)
def test_bad_json_is_a_decode_error_that_says_where(body, message):
    with pytest.raises(DecodeError) as caught:
        decode_traces_json(body)
    assert message in str(caught.value)


def test_wrong_argument_types_are_type_errors():
    with pytest.raises(TypeError):
        decode_traces_request(ExportLogsServiceRequest())
    with pytest.raises(TypeError):
        decode_logs_request(ExportTraceServiceRequest())
    with pytest.raises(TypeError):
        decode_traces_protobuf("text")


def corrupt(request, placeholder: bytes, replacement: bytes) -> bytes:
    data = request.SerializeToString()
    assert data.count(placeholder) == 1
    return data.replace(placeholder, replacement)


@pytest.mark.parametrize(
    "where",
    [
        "span name",
        "attribute value",
        "value to escape",
        "attribute key",
        "nested value",
        "thread id",
        "scope name",
        "event attribute",
    ],
)
def test_invalid_utf8_in_protobuf_is_a_decode_error(where):
    marker = "QQQQ"
    pairs = {
        "attribute value": [("k", marker)],
        "value to escape": [("k", marker + '"\n')],
        "attribute key": [(marker, "v")],
        "nested value": [("k", [1, marker])],
        "thread id": [("gen_ai.conversation.id", marker)],
    }.get(where, [("k", "v")])
    request = one_span_request(pairs, name=marker if where == "span name" else "op")
    if where == "scope name":
        request.resource_spans[0].scope_spans[0].scope.name = marker
    if where == "event attribute":
        event = request.resource_spans[0].scope_spans[0].spans[0].events.add(name="e")
        set_value(event.attributes.add(key="k").value, marker)
    data = corrupt(request, marker.encode(), b"\xc3\x28\xff\xfe")
    with pytest.raises(DecodeError, match="not valid"):
        decode_traces_protobuf(data)


# --- deep nesting ------------------------------------------------------------------


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, by hand."""
    tag, length, out = number << 3 | 2, len(payload), bytearray()
    for value in (tag, length):
        while value > 127:
            out.append(value & 127 | 128)
            value >>= 7
        out.append(value)
    return bytes(out) + payload


def test_deep_nesting_is_truncated_not_a_crash():
    depth = 10_000
    value = b""  # empty AnyValue
    for _ in range(depth):
        value = field(5, field(1, value))  # AnyValue{array_value: {values: [value]}}
    span = Span(trace_id=TRACE_ID, span_id=b"\x01" * 8, name="deep").SerializeToString()
    span += field(9, field(1, b"deep") + field(2, value))  # one more attribute, appended
    data = field(1, field(2, field(2, span)))

    # too deep for the standard parse (protobuf 7 says MaxDepth, 6 only that it failed)
    with pytest.raises(message.DecodeError):
        ExportTraceServiceRequest.FromString(data)
    (row,) = decode_traces_protobuf(data).table.to_pylist()
    node, levels = json.loads(row["attributes"])["deep"], 0
    while isinstance(node, list):
        (node,), levels = node, levels + 1
    assert (levels, node) == (65, {"$truncated": "depth"})

    nested = '{"arrayValue":{"values":[' * depth + "{}" + "]}}" * depth
    body = spans_json("{" + IDS + ',"attributes":[{"key":"deep","value":' + nested + "}]}")
    (json_row,) = decode_traces_json(body).table.to_pylist()
    assert json_row["attributes"] == row["attributes"]


def test_nesting_just_under_the_cap_is_kept():
    value = "leaf"
    for _ in range(64):
        value = [value]
    text = attributes_of(one_span_request([("v", value)]))
    assert text == '{"v":' + "[" * 64 + '"leaf"' + "]" * 64 + "}"


# --- logs --------------------------------------------------------------------------


def logs_request() -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    set_value(resource_logs.resource.attributes.add(key="service.name").value, "bot")
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "genai"
    first = scope_logs.log_records.add(
        time_unix_nano=T0, observed_time_unix_nano=T0 + 5, severity_number=9, severity_text="INFO",
        event_name="gen_ai.user.message", trace_id=TRACE_ID, span_id=b"\x02" * 8,
    )  # fmt: skip
    set_value(first.body, ("kv", [("role", "user"), ("content", "hi")]))
    second = scope_logs.log_records.add(observed_time_unix_nano=T0 + 7, trace_id=bytes(16))
    set_value(second.attributes.add(key="event.name").value, "gen_ai.choice")
    set_value(second.body, "plain text")
    third = scope_logs.log_records.add(time_unix_nano=T0)
    set_value(third.attributes.add(key="event.name").value, 42)
    return request


def test_log_rows():
    rows = rows_of(logs_request())
    first = dict(rows[0])
    record_id = first.pop("record_id")
    assert first == {
        "trace_id": TRACE_ID.hex(),
        "span_id": "0202020202020202",
        "time": datetime(2023, 11, 14, 22, 13, 20),
        "time_unix_nano": T0,
        "observed_time_unix_nano": T0 + 5,
        "severity_number": 9,
        "severity_text": "INFO",
        "event_name": "gen_ai.user.message",
        "body": '{"role":"user","content":"hi"}',
        "attributes": "{}",
        "resource_attributes": '{"service.name":"bot"}',
        "scope_name": "genai",
        "scope_version": None,
        "service_name": "bot",
        "project": "bot",
        "flags": 0,
        "dropped_attributes_count": 0,
    }
    assert len(record_id) == 32 and int(record_id, 16) >= 0
    assert (rows[1]["event_name"], rows[1]["trace_id"], rows[1]["body"]) == (
        "gen_ai.choice", None, '"plain text"',
    )  # fmt: skip
    assert rows[1]["time"] == datetime(2023, 11, 14, 22, 13, 20, 0)  # observed time, 7 ns later
    assert (rows[2]["event_name"], rows[2]["body"]) == (None, None)  # not a string; unset body
    assert len({row["record_id"] for row in rows}) == 3


def test_record_id_is_stable_and_content_addressed():
    request = logs_request()
    first = decode_logs_protobuf(request.SerializeToString()).table.column("record_id")
    again = decode_logs_protobuf(request.SerializeToString()).table.column("record_id")
    from_json = decode_logs_json(to_json(request)).table.column("record_id")
    assert first.to_pylist() == again.to_pylist() == from_json.to_pylist()
    request.resource_logs[0].scope_logs[0].log_records[0].body.kvlist_value.values[
        1
    ].value.string_value = "hello"
    changed = decode_logs_protobuf(request.SerializeToString()).table.column("record_id")
    assert changed.to_pylist()[0] != first.to_pylist()[0]
    assert changed.to_pylist()[1:] == first.to_pylist()[1:]


def test_sdk_log_records():
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource({"service.name": "bot"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("genai")
    logger.emit(
        timestamp=T0, observed_timestamp=T0, severity_number=SeverityNumber.INFO,
        body={"content": "hi", "tokens": 3}, event_name="gen_ai.user.message",
        attributes={"gen_ai.system": "openai"},
    )  # fmt: skip
    provider.shutdown()
    (row,) = rows_of(encode_logs(exporter.get_finished_logs()))
    assert (row["event_name"], row["body"], row["attributes"], row["severity_number"]) == (
        "gen_ai.user.message", '{"content":"hi","tokens":3}', '{"gen_ai.system":"openai"}', 9,
    )  # fmt: skip


def test_logs_with_malformed_ids_are_rejected():
    request = logs_request()
    records = request.resource_logs[0].scope_logs[0].log_records
    records[0].trace_id = b"\x01" * 5
    records[2].span_id = b"\x01" * 3
    for batch in all_paths(request):
        assert (batch.accepted, batch.rejected) == (1, 2)
        assert batch.error == (
            "2 log records rejected: log record 0 of scope 'genai': trace_id must be empty or 16 "
            "bytes, got 5; log record 2 of scope 'genai': span_id must be empty or 8 bytes, got 3"
        )
    body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]})
    assert decode_logs_json(body.encode()).rejected == 1


# --- fuzz --------------------------------------------------------------------------

SEED_TRACES = one_span_request(
    [("s", "text"), ("i", 300), ("d", 0.25), ("b", True), ("l", [1, "x", ("kv", [("k", b"v")])])],
    parent_span_id=b"\x03" * 8,
)
SEED_TRACES.resource_spans[0].scope_spans[0].spans[0].events.add(name="e").attributes.add(key="a")
SEED_LOGS = logs_request()
SEEDS = [
    (SEED_TRACES.SerializeToString(), decode_traces_protobuf, SPAN_JSON_COLUMNS),
    (to_json(SEED_TRACES), decode_traces_json, SPAN_JSON_COLUMNS),
    (SEED_LOGS.SerializeToString(), decode_logs_protobuf, LOG_JSON_COLUMNS),
    (to_json(SEED_LOGS), decode_logs_json, LOG_JSON_COLUMNS),
]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def decode_or_decode_error(decode, data: bytes, columns) -> None:
    try:
        batch = decode(data)
    except DecodeError:
        return
    check_json_columns(batch, columns)
    assert batch.accepted == batch.table.num_rows


@FUZZ
@given(st.sampled_from(SEEDS[::2]), st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_decode_error(seed, data):
    _, decode, columns = seed
    decode_or_decode_error(decode, data, columns)
    json_decode = decode_traces_json if decode is decode_traces_protobuf else decode_logs_json
    decode_or_decode_error(json_decode, data, columns)


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from("sid")), max_size=4
    ),
)
def test_mutated_requests_never_raise_anything_but_decode_error(seed, edits):
    data, decode, columns = seed
    data = bytearray(data)
    for position, byte, how in edits:
        position %= len(data) + 1
        if how == "s" and position < len(data):
            data[position] = byte
        elif how == "i":
            data.insert(position, byte)
        elif position < len(data):
            del data[position]
    decode_or_decode_error(decode, bytes(data), columns)


# --- the columnar fast path of the protobuf span reader ----------------------------
#
# decode_traces_protobuf reads spans column by column and hands the request to the
# per-span reader (protobuf.trace_rows) whenever a span is rejected or
# anything fails; these tests hold it to that reader, byte for byte: the same
# table, counts, rejection message, and error message.


def per_span_reader(data: bytes) -> tuple:
    """The outcome of the per-span reader alone (the reference of the fast path)."""
    from otel_threads.otlp import protobuf, tables

    try:
        rows, scopes, scope_counts, rejections = protobuf.trace_rows(data)
        table = tables.span_table(rows, scopes, scope_counts)
    except DecodeError as exc:
        return ("error", str(exc))
    return ("ok", table, len(rows), rejections.count, rejections.error())


def fast_path_outcome(data: bytes) -> tuple:
    try:
        batch = decode_traces_protobuf(data)
    except DecodeError as exc:
        return ("error", str(exc))
    return ("ok", batch.table, batch.accepted, batch.rejected, batch.error)


def assert_same_as_per_span_reader(data: bytes) -> None:
    expected = per_span_reader(data)
    got = fast_path_outcome(data)
    assert got[0] == expected[0], (got, expected)
    if got[0] == "error":
        assert got == expected
        return
    assert got[1].schema.equals(SPAN_SCHEMA)
    assert got[1].equals(expected[1])
    assert got[1].to_pylist() == expected[1].to_pylist()
    assert got[2:] == expected[2:]


SPAN_VALUES = st.one_of(
    st.sampled_from(["", "x", "t-1", 'a"b', "é中", "$v", "\x01", "y" * 150]),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.floats(),
    st.sampled_from([b"\x00\xff", None, ["x", 1], ("kv", [("k", "v")])]),
)
SPAN_KEYS = st.sampled_from(
    ["k", "k2", "$k", "", *THREAD_KEYS[:2], *TURN_KEYS, "otel_threads.previous_turn_id"]
)
SPAN_FIELDS = st.fixed_dictionaries(
    {
        "trace_id": st.sampled_from([TRACE_ID, bytes(range(2, 18)), bytes(16), b"\x01" * 15]),
        "span_id": st.sampled_from([b"\x01" * 8, b"\x02" * 8, bytes(8)]),
        "parent_span_id": st.sampled_from([b"", b"\x03" * 8, bytes(8), b"\x03"]),
        "name": st.sampled_from(["op", "", "é"]),
        "kind": st.sampled_from([0, 1, 2, 3, 5, 6, 99]),
        "start_time_unix_nano": st.sampled_from([0, 1, T0, 2**63 - 1, 2**64 - 1]),
        "end_time_unix_nano": st.sampled_from([0, T0 + 1, 2**63 - 1, 2**53 + 1]),
        "flags": st.sampled_from([0, 256, 2**32 - 1]),
    }
)
RARE_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "trace_state": st.sampled_from(["", "a=b"]),
        "dropped_attributes_count": st.sampled_from([0, 1, 2**32 - 1]),
        "dropped_events_count": st.sampled_from([0, 3]),
        "dropped_links_count": st.sampled_from([0, 2**31]),
        "events": st.just(True),
        "links": st.just(True),
        "status": st.sampled_from([(1, ""), (2, "boom"), (7, "")]),
    },
)
SPANS = st.lists(
    st.tuples(SPAN_FIELDS, st.lists(st.tuples(SPAN_KEYS, SPAN_VALUES), max_size=5), RARE_FIELDS),
    max_size=4,
)


FAST_SPAN = {
    "trace_id": TRACE_ID,
    "span_id": b"\x01" * 8,
    "name": "op",
    "start_time_unix_nano": T0,
    "end_time_unix_nano": T0 + 1,
}


def build_request(resources) -> bytes:
    request = ExportTraceServiceRequest()
    for resource, scopes in resources:
        resource_spans = request.resource_spans.add()
        for key, value in resource:
            set_value(resource_spans.resource.attributes.add(key=key).value, value)
        for scope_name, spans in scopes:
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope_name
            for fields, pairs, rare in spans:
                span = scope_spans.spans.add(**fields)
                for key, value in pairs:
                    set_value(span.attributes.add(key=key).value, value)
                rare = dict(rare)
                if rare.pop("events", False):
                    event = span.events.add(name="e", time_unix_nano=T0)
                    set_value(event.attributes.add(key="n").value, 1)
                if rare.pop("links", False):
                    link = span.links.add(trace_id=TRACE_ID, span_id=b"\x05" * 8)
                    set_value(link.attributes.add(key="l").value, "v")
                if "status" in rare:
                    span.status.code, span.status.message = rare.pop("status")
                for key, value in rare.items():
                    setattr(span, key, value)
    return request.SerializeToString()


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.sampled_from(["service.name", "x"]), SIMPLE_TEXT), max_size=2),
            st.lists(st.tuples(st.sampled_from(["s", "", "é"]), SPANS), max_size=3),
        ),
        max_size=3,
    )
)
def test_fast_path_equals_the_per_span_reader(resources):
    """Several resources and scopes, rare fields in some scopes only, rejected spans,
    odd enums and times past int64: the same outcome as the per-span reader."""
    assert_same_as_per_span_reader(build_request(resources))


CORRUPTIBLE = build_request(
    [
        (
            [("service.name", "svc")],
            [
                (
                    "s",
                    [
                        ({**FAST_SPAN, "span_id": b"\x01" * 8}, [(THREAD_KEYS[0], "t")], {}),
                        ({**FAST_SPAN, "span_id": b"\x02" * 8}, [("n", 5), ("a", ["x"])], {}),
                        ({**FAST_SPAN, "span_id": b"\x03" * 8}, [], {"events": True}),
                    ],
                )
            ],
        )
    ]
)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_fast_path_errors_equal_the_per_span_reader(edits):
    """Corrupted requests: the same outcome, error message included, as the per-span reader."""
    data = bytearray(CORRUPTIBLE)
    for position, byte in edits:
        data[position % len(data)] = byte
    assert_same_as_per_span_reader(bytes(data))


def test_rare_fields_are_read_for_the_scopes_that_set_them():
    plain = [({**FAST_SPAN, "span_id": b"\x02" * 8}, [("k", "v")], {})]
    rare = [
        ({**FAST_SPAN, "span_id": b"\x03" * 8}, [], {"trace_state": "a=b"}),
        ({**FAST_SPAN, "span_id": b"\x04" * 8}, [], {"events": True, "links": True}),
        ({**FAST_SPAN, "span_id": b"\x05" * 8}, [], {"dropped_links_count": 2**31}),
    ]
    data = build_request([([], [("plain", plain), ("rare", rare), ("plain2", plain)])])
    assert_same_as_per_span_reader(data)
    rows = decode_traces_protobuf(data).table.to_pylist()
    assert [row["trace_state"] for row in rows] == [None, "a=b", None, None, None]
    assert [row["links"] != "[]" for row in rows] == [False, False, True, False, False]
    assert [row["dropped_links_count"] for row in rows] == [0, 0, 0, 2**31 - 1, 0]


def test_explicit_default_values_on_the_wire():
    """Fields written with their default value (as some encoders do) decode as unset."""
    span = Span(trace_id=TRACE_ID, span_id=b"\x01" * 8, name="op").SerializeToString()
    span += bytes([0x1A, 0]) + bytes([0x50, 0]) + bytes([0x60, 0]) + bytes([0x70, 0])
    span += bytes([0x30, 0]) + bytes([0x7A, 0])  # kind 0, empty status
    data = field(1, field(2, field(2, span)))
    assert_same_as_per_span_reader(data)
    (row,) = decode_traces_protobuf(data).table.to_pylist()
    assert (row["trace_state"], row["dropped_attributes_count"], row["kind"]) == (
        None,
        0,
        "UNSPECIFIED",
    )


def test_the_first_error_in_span_order_wins():
    """An undecodable event attribute in an early span and an invalid thread id in a
    later one: the error is the early span's, as when reading span by span."""
    early = ({**FAST_SPAN, "span_id": b"\x01" * 8}, [], {})
    late = ({**FAST_SPAN, "span_id": b"\x02" * 8}, [(THREAD_KEYS[0], "QQQQ")], {})
    request = ExportTraceServiceRequest.FromString(build_request([([], [("s", [early, late])])]))
    event = request.resource_spans[0].scope_spans[0].spans[0].events.add(name="e")
    set_value(event.attributes.add(key="n").value, ["PPPP"])  # read by the generic path
    data = request.SerializeToString().replace(b"PPPP", b"\xc3\x28\xff\xfe")
    data = data.replace(b"QQQQ", b"\xe2\x82\x28\xff")
    assert_same_as_per_span_reader(data)
    with pytest.raises(DecodeError) as raised:
        decode_traces_protobuf(data)
    assert "AnyValue" in str(raised.value) and "0xe2" not in str(raised.value)


def test_durations_of_long_spans_are_exact():
    # (5 / 1e6 and 1_500_000_007 / 1e6 differ from a multiplication by 1e-6)
    starts_ends = [(0, 2**53 + 1), (1, 2**63 - 1), (2**63 - 1, 1), (T0, T0 + 5), (5, 5),
                   (T0, T0 + 1_500_000_007)]  # fmt: skip
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i, (start, end) in enumerate(starts_ends):
        times = {"start_time_unix_nano": start, "end_time_unix_nano": end}
        spans.add(**{**FAST_SPAN, "span_id": bytes([i + 1]) * 8, **times})
    data = request.SerializeToString()
    assert_same_as_per_span_reader(data)
    durations = decode_traces_protobuf(data).table.column("duration_ms").to_pylist()
    assert durations == [(end - start) / 1e6 for start, end in starts_ends]


def test_the_sql_ranks_thread_keys_in_the_decoders_order():
    """derive_span_threads.sql picks a trace's thread by the same key priority."""
    import re
    from importlib import resources

    from otel_threads.otlp.values import THREAD_ID_KEYS

    sql = resources.files("otel_threads").joinpath("sql/derive_span_threads.sql").read_text()
    listed = re.search(r"list_transform\(\s*\[(.*?)\]", sql, re.S).group(1)
    assert re.findall(r"'([^']+)'", listed) == list(THREAD_ID_KEYS) == THREAD_KEYS
