"""Large protobuf requests are decoded in pieces (otel_threads.otlp.split): the pieces
hold every span and log record once, with its own resource and scope, and decode to the
same rows as the whole request. A JSON request is charged, before it is parsed, at
least what parsing it takes (otel_threads.otlp.json_values.json_parse_bytes)."""

from __future__ import annotations

import json
import tracemalloc

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from otel_threads.otlp.decode import DecodeError, decode_logs_protobuf, decode_traces_protobuf
from otel_threads.otlp.json_values import json_parse_bytes
from otel_threads.otlp.json_values import load_json as load_json_values
from otel_threads.otlp.split import PIECE_BYTES, split_request


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def traces_request(resources: int, scopes: int, spans: int) -> bytes:
    out = trace_service_pb2.ExportTraceServiceRequest()
    n = 0
    for r in range(resources):
        rs = out.resource_spans.add(
            resource=Resource(attributes=[_kv("service.name", f"svc-{r}")]),
            schema_url=f"https://schema/{r}",
        )
        for s in range(scopes):
            ss = rs.scope_spans.add(scope=InstrumentationScope(name=f"scope-{s}", version="1"))
            for _ in range(spans):
                n += 1
                ss.spans.append(
                    trace_pb2.Span(
                        trace_id=(n // 4 + 1).to_bytes(16, "big"),
                        span_id=n.to_bytes(8, "big"),
                        name=f"span-{n}",
                        start_time_unix_nano=n,
                        end_time_unix_nano=n + 1,
                        attributes=[
                            _kv("gen_ai.conversation.id", f"thread-{n % 7}"),
                            _kv("text", "x" * (n % 300)),
                        ],
                    )
                )
    return out.SerializeToString()


def logs_request(records: int) -> bytes:
    out = logs_service_pb2.ExportLogsServiceRequest()
    rl = out.resource_logs.add(resource=Resource(attributes=[_kv("service.name", "svc")]))
    sl = rl.scope_logs.add(scope=InstrumentationScope(name="logs"))
    for n in range(1, records + 1):
        sl.log_records.append(
            logs_pb2.LogRecord(
                time_unix_nano=n,
                trace_id=n.to_bytes(16, "big"),
                span_id=n.to_bytes(8, "big"),
                body=AnyValue(string_value="y" * (n % 500)),
                event_name="gen_ai.choice",
            )
        )
    return out.SerializeToString()


def _rows(table: pa.Table) -> list[tuple]:
    return sorted(map(tuple, (list(r.values()) for r in table.to_pylist())), key=repr)


@pytest.mark.parametrize("shape", [(1, 1, 3000), (3, 4, 250), (40, 1, 60)])
def test_pieces_decode_to_the_rows_of_the_whole_request(shape: tuple[int, int, int]) -> None:
    data = traces_request(*shape)
    pieces = list(split_request(data, limit=16 << 10))
    assert len(pieces) > 1
    assert all(len(p) <= (16 << 10) + 256 for p in pieces)  # + the resource and scope
    whole = decode_traces_protobuf(data).table
    parts = pa.concat_tables([decode_traces_protobuf(p).table for p in pieces])
    assert parts.num_rows == whole.num_rows == shape[0] * shape[1] * shape[2]
    assert _rows(parts) == _rows(whole)


def test_log_records_split_too() -> None:
    data = logs_request(2000)
    pieces = list(split_request(data, limit=32 << 10))
    assert len(pieces) > 1
    whole = decode_logs_protobuf(data).table
    parts = pa.concat_tables([decode_logs_protobuf(p).table for p in pieces])
    assert _rows(parts) == _rows(whole)


def test_a_small_request_is_itself_and_an_item_too_large_stands_alone() -> None:
    data = traces_request(1, 1, 5)
    assert list(split_request(data, limit=1 << 20)) == [data]
    big = traces_request(1, 1, 400)
    pieces = list(split_request(big, limit=100))  # every span is over the limit
    assert len(pieces) == 400


@pytest.mark.parametrize(
    "bad",
    [
        b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 200,  # runs past
        b"\x0b" + b"x" * 200,  # wire type 3 (groups)
        b"\x0a\x05\x12\x80",
    ],
)
def test_malformed_framing_is_a_decode_error(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        list(split_request(bad * 20, limit=64))


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_splitting_holds_no_object_per_span() -> None:
    # 16 MiB of tiny spans: an object per span (a slice, a tuple) would hold tens of MiB
    data = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        spans=[
                            trace_pb2.Span(
                                trace_id=(n + 1).to_bytes(16, "big"),
                                span_id=(n + 1).to_bytes(8, "big"),
                                name="s",
                            )
                            for n in range(400_000)
                        ]
                    )
                ]
            )
        ]
    ).SerializeToString()
    sizes: list[int] = []
    peak = _peak_bytes(lambda: sizes.extend(len(p) for p in split_request(data)))
    assert sum(sizes) > len(data) and max(sizes) <= PIECE_BYTES + 64  # + the framing
    # a few copies of one piece (a copy a level of nesting), nothing per span
    assert peak < 8 * PIECE_BYTES, f"splitting held {peak >> 20} MiB at once"


_SHAPES = {  # ordinary OTLP/JSON and hostile bodies that json.loads blows up most
    "otlp": lambda n: json.dumps(
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": f"{j:032x}",
                                    "spanId": f"{j:016x}",
                                    "name": "s",
                                    "startTimeUnixNano": "1",
                                    "endTimeUnixNano": "2",
                                    "attributes": [
                                        {"key": f"k{i}", "value": {"stringValue": f"v{j}"}}
                                        for i in range(20)
                                    ],
                                }
                                for j in range(n // 100)
                            ]
                        }
                    ]
                }
            ]
        }
    ),
    "otlp_snake": lambda n: json.dumps(
        {
            "resource_spans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": f"{j:032x}",
                                    "span_id": f"{j:016x}",
                                    "name": "s",
                                    "attributes": [{"key": "k", "value": {"int_value": j}}],
                                }
                                for j in range(n // 10)
                            ]
                        }
                    ]
                }
            ]
        }
    ),
    "empty_objects": lambda n: '{"x":[' + ",".join(["{}"] * n) + "]}",
    "empty_arrays": lambda n: '{"x":[' + ",".join(["[]"] * n) + "]}",
    "nested_arrays": lambda n: '{"x":[' + ",".join(["[[[]]]"] * n) + "]}",
    "one_key_objects": lambda n: '{"x":[' + ",".join(['{"a":1}'] * n) + "]}",
    "numbers": lambda n: '{"x":[' + ",".join(f"{1000 + i}.5" for i in range(n)) + "]}",
    "strings": lambda n: '{"x":[' + ",".join(f'"{i}"' for i in range(n)) + "]}",
    "escaped_quotes_keys": lambda n: (
        '{"x":["' + '\\":' * n + '",' + ",".join(f'"s{i}"' for i in range(n)) + "]}"
    ),
    "astral_text": lambda n: '{"x":"\U0001f600' + "a" * (4 * n) + '"}',
}


@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_the_json_parse_charge_is_never_below_what_parsing_takes(shape: str) -> None:
    data = _SHAPES[shape](100_000).encode()
    peak = _peak_bytes(lambda: load_json_values(data))
    charged = json_parse_bytes(data)
    assert charged >= peak, f"charged {charged}, parsing took {peak}"
    if shape == "otlp":  # ordinary bodies are not charged much beyond it
        assert charged < 2 * peak


def test_one_batch_type_from_the_decoder_through_a_worker_to_the_writer():
    """A DecodedBatch goes through a decode worker's pipe (to_bytes, from_bytes) and
    the pieces of a request join into one (what the writer takes), unchanged."""
    from otel_threads.collector.decode_pool import DecodePool, decode_inline
    from otel_threads.otlp.tables import DecodedBatch

    bad = trace_pb2.Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 3, name="bad")
    data = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[bad])])]
    ).SerializeToString() + traces_request(2, 2, 5)
    inline = decode_inline("traces", "protobuf", data)
    assert (inline.accepted, inline.rejected) == (20, 1) and inline.error
    again = DecodedBatch.from_bytes(inline.to_bytes())
    assert again.table.equals(inline.table)
    assert (again.accepted, again.rejected, again.error) == (
        inline.accepted,
        inline.rejected,
        inline.error,
    )
    pool = DecodePool(1)
    try:
        pooled = pool.decode("traces", "protobuf", data)
    finally:
        pool.close()
    assert isinstance(pooled, DecodedBatch) and pooled.table.equals(inline.table)
    assert (pooled.accepted, pooled.rejected, pooled.error) == (
        inline.accepted,
        inline.rejected,
        inline.error,
    )
    pieces = [decode_inline("traces", "protobuf", p) for p in split_request(data, limit=512)]
    assert len(pieces) > 2
    joined = DecodedBatch.join(pieces)
    assert joined.table.sort_by("span_id").equals(inline.table.sort_by("span_id"))
    assert (joined.accepted, joined.rejected, joined.error) == (
        inline.accepted,
        inline.rejected,
        inline.error,
    )
