"""The Collector clickhouseexporter's tables and our rows, both ways, in a real chDB.

The real-producer fixtures (tests/fixtures/genai) are decoded as the collector decodes
them, written to otel_traces / otel_logs as the exporter would write them, selected back
and mapped to our rows: equal to the decoded rows except for what the exporter does not
keep (LOST_SPAN_COLUMNS, LOST_LOG_COLUMNS, lossy_attributes; docs/clickhouse.md, "What
the exporter keeps").
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest
from chdb_store import chdb_engine

from otel_threads.clickhouse.engine import quote_name
from otel_threads.clickhouse.exporter_rows import (
    from_exporter_logs,
    from_exporter_spans,
    insert_as_exporter,
    to_exporter_spans,
)
from otel_threads.clickhouse.exporter_schema import (
    LOG_COLUMNS,
    LOG_TYPES,
    TRACE_COLUMNS,
    TRACE_TYPES,
    exporter_ddl,
)
from otel_threads.clickhouse.exporter_values import RESTORED_TYPES, as_string, scalar_array
from otel_threads.otlp.decode import decode_logs_json, decode_traces_json
from otel_threads.otlp.tables import LOG_SCHEMA, SPAN_SCHEMA

FIXTURES = Path(__file__).parent / "fixtures" / "genai"

LOST_SPAN_COLUMNS = {
    "scope_attributes": {},  # not stored for spans
    "flags": 0,
    "dropped_attributes_count": 0,
    "dropped_events_count": 0,
    "dropped_links_count": 0,
}
LOST_LOG_COLUMNS = {"dropped_attributes_count": 0}
# and: a value of a key not in RESTORED_TYPES comes back as its AsString text; an
# event's / a link's dropped_attributes_count and a link's flags come back 0; a log's
# time_unix_nano and observed_time_unix_nano both come back as its time, else its
# observed time; a log's record_id is a hash of the restored row (not the decoded one).


@cache
def decoded(kind: str) -> pa.Table:
    """Every real-producer fixture of a kind ("traces", "logs"), decoded."""
    decode = decode_traces_json if kind == "traces" else decode_logs_json
    paths = sorted(FIXTURES.glob(f"*.{kind}.json"))
    return pa.concat_tables([decode(p.read_bytes()).table for p in paths])


def select(engine, table: str, columns) -> pa.Table:
    return engine.query(f"SELECT {', '.join(map(quote_name, columns))} FROM {table}")


def lossy_attributes(attributes: dict) -> dict:
    """Attributes as they come back: typed only where RESTORED_TYPES says."""
    out = {}
    for key, value in attributes.items():
        plain = key[1:] if key[:1] == "$" else key
        keep = type(value) is str or plain in RESTORED_TYPES
        text = value if keep else as_string(value)
        array = None if keep else scalar_array(text)
        out[key] = text if array is None else array
    return out


def span_rows(table: pa.Table, lossy: bool) -> list[dict]:
    """Rows, JSON columns parsed (and, when lossy, what the exporter loses applied)."""
    attrs = lossy_attributes if lossy else (lambda a: a)
    rows = []
    for row in table.to_pylist():
        row["attributes"] = attrs(json.loads(row["attributes"]))
        row["resource_attributes"] = attrs(json.loads(row["resource_attributes"]))
        row["scope_attributes"] = json.loads(row["scope_attributes"])
        row["events"] = json.loads(row["events"])
        row["links"] = json.loads(row["links"])
        for item in row["events"] + row["links"]:
            item["attributes"] = attrs(item["attributes"])
        if lossy:
            row.update(LOST_SPAN_COLUMNS)
            for item in row["events"] + row["links"]:
                item["dropped_attributes_count"] = 0
            for link in row["links"]:
                link["flags"] = 0
        rows.append(row)
    return sorted(rows, key=lambda r: (r["trace_id"], r["span_id"]))


def log_rows(table: pa.Table, lossy: bool) -> list[dict]:
    attrs = lossy_attributes if lossy else (lambda a: a)
    rows = []
    for row in table.to_pylist():
        row["attributes"] = attrs(json.loads(row["attributes"]))
        row["resource_attributes"] = attrs(json.loads(row["resource_attributes"]))
        row["body"] = None if row["body"] is None else json.loads(row["body"])
        del row["record_id"]
        if lossy:
            row.update(LOST_LOG_COLUMNS)
            when = row["time_unix_nano"] or row["observed_time_unix_nano"]
            row["time_unix_nano"] = row["observed_time_unix_nano"] = when
        rows.append(row)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _typed(value):
    """A value compared with its JSON types (so 1 != 1.0 != True)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def assert_same_columns(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for column in expected[0]:
        got, want = ([_typed(r[column]) for r in rows] for rows in (actual, expected))
        assert got == want, column


# --- the schema ---------------------------------------------------------------------


_MAP = "Map(LowCardinality(String), String)"
_LC = "LowCardinality(String)"
EXPORTER_TRACES = [  # otel_traces, as the exporter's traces_table.sql declares it
    ("Timestamp", "DateTime64(9)"), ("TraceId", "String"), ("SpanId", "String"),
    ("ParentSpanId", "String"), ("TraceState", "String"), ("SpanName", _LC),
    ("SpanKind", _LC), ("ServiceName", _LC), ("ResourceAttributes", _MAP),
    ("ScopeName", "String"), ("ScopeVersion", "String"), ("SpanAttributes", _MAP),
    ("Duration", "UInt64"), ("StatusCode", _LC), ("StatusMessage", "String"),
    ("Events.Timestamp", "Array(DateTime64(9))"), ("Events.Name", f"Array({_LC})"),
    ("Events.Attributes", f"Array({_MAP})"), ("Links.TraceId", "Array(String)"),
    ("Links.SpanId", "Array(String)"), ("Links.TraceState", "Array(String)"),
    ("Links.Attributes", f"Array({_MAP})"),
]  # fmt: skip
EXPORTER_LOGS = [  # otel_logs (v0.151.0 logs_table.sql), then its 8 materialized copies
    ("Timestamp", "DateTime64(9)"), ("TraceId", "String"), ("SpanId", "String"),
    ("TraceFlags", "UInt8"), ("SeverityText", _LC), ("SeverityNumber", "UInt8"),
    ("ServiceName", _LC), ("Body", "String"), ("ResourceSchemaUrl", _LC),
    ("ResourceAttributes", _MAP), ("ScopeSchemaUrl", _LC), ("ScopeName", "String"),
    ("ScopeVersion", _LC), ("ScopeAttributes", _MAP), ("LogAttributes", _MAP),
    ("EventName", "String"),
]  # fmt: skip


def test_ddl_applies_and_describe_matches_the_columns_the_worker_selects():
    engine = chdb_engine()
    for _ in range(2):  # IF NOT EXISTS: a second run changes nothing
        for statement in exporter_ddl(engine.database):
            engine.command(statement)
    traces = [(r[0], r[1]) for r in engine.rows("DESCRIBE TABLE otel_traces")]
    assert traces == EXPORTER_TRACES == list(TRACE_TYPES)
    assert list(TRACE_COLUMNS) == [name for name, _ in EXPORTER_TRACES]
    logs = engine.rows("DESCRIBE TABLE otel_logs")
    assert [(r[0], r[1]) for r in logs[:16]] == EXPORTER_LOGS == list(LOG_TYPES)
    assert list(LOG_COLUMNS) == [name for name, _ in EXPORTER_LOGS]
    copies = [(r[0], r[2], r[3]) for r in logs[16:]]
    assert len(copies) == 8 and ("__otel_materialized_k8s.pod.name", "MATERIALIZED",
        "ResourceAttributes['k8s.pod.name']") in copies  # fmt: skip
    lookup = [(r[0], r[1]) for r in engine.rows("DESCRIBE TABLE otel_traces_trace_id_ts")]
    assert lookup == [
        ("TraceId", "String"),
        ("Start", "SimpleAggregateFunction(min, DateTime)"),
        ("End", "SimpleAggregateFunction(max, DateTime)"),
    ]


def test_ttl_goes_on_each_table_and_a_bad_one_says_what_to_give():
    statements = exporter_ddl("otel", ttl_days=7)
    assert [s.count("toIntervalDay(7)") for s in statements] == [1, 1, 0, 1]
    assert "TTL" not in "".join(exporter_ddl("otel"))
    engine = chdb_engine()
    for statement in exporter_ddl(engine.database, ttl_days=7):
        engine.command(statement)
    with pytest.raises(ValueError, match="whole number of days"):
        exporter_ddl("otel", ttl_days=1.5)


def test_the_materialized_view_fills_the_trace_time_lookup():
    engine = chdb_engine()
    spans = decoded("traces")
    insert_as_exporter(engine, spans=spans)
    expected: dict[str, list[int]] = {}
    for trace, start in zip(spans["trace_id"].to_pylist(),
                            spans["start_time_unix_nano"].to_pylist(), strict=True):  # fmt: skip
        seconds = start // 10**9
        low, high = expected.get(trace, (seconds, seconds))
        expected[trace] = [min(low, seconds), max(high, seconds)]
    rows = engine.rows(
        "SELECT TraceId, toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)) "
        "FROM otel_traces_trace_id_ts GROUP BY TraceId ORDER BY TraceId"
    )
    assert [(t, [s, e]) for t, s, e in rows] == sorted(expected.items())


# --- the values ---------------------------------------------------------------------


def _value(kind: str, value) -> dict:
    return {kind: value}


def _array(*values: dict) -> dict:
    return _value("arrayValue", {"values": list(values)})


def _kvlist(*pairs: tuple[str, dict]) -> dict:
    return _value("kvlistValue", {"values": [{"key": k, "value": v} for k, v in pairs]})


def _double(x) -> dict:
    return _value("doubleValue", x)


GO_STRINGS = [  # (OTLP/JSON AnyValue, what pcommon Value.AsString() gives)
    (_value("stringValue", "text"), "text"),
    (_value("boolValue", True), "true"),
    (_value("intValue", "-12"), "-12"),
    (_double(1.0), "1"),
    (_double(0.1), "0.1"),
    (_double(-2.5), "-2.5"),
    (_double(1e20), "100000000000000000000"),
    (_double(1e21), "1e+21"),
    (_double(1e-7), "1e-7"),
    (_double(1.5e-10), "1.5e-10"),
    (_double(0.000001), "0.000001"),
    (_double("NaN"), "json: unsupported value: NaN"),
    (_double("-Infinity"), "json: unsupported value: -Inf"),
    (_value("bytesValue", "AQID"), "AQID"),
    (
        _array(_value("stringValue", 'a<b>&"c"\n'), _value("intValue", 1), _double(2.0),
               _value("boolValue", False), {}, _value("bytesValue", "AQID")),
        '["a\\u003cb\\u003e\\u0026\\"c\\"\\n",1,2,false,null,"AQID"]',
    ),
    (
        _kvlist(("z", _value("stringValue", "1")), ("$k", _kvlist(("y", _double(1e21)))),
                ("a", _array())),
        '{"$k":{"y":1e+21},"a":[],"z":"1"}',
    ),
    (_array(_double("NaN")), ""),
    ({}, ""),
]  # fmt: skip


def _span_request(attributes: list[dict], end: str = "1700000001123456790", **more) -> str:
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "answer",
        "kind": 2,
        "startTimeUnixNano": "1700000000123456789",
        "endTimeUnixNano": end,
        "attributes": attributes,
        "status": {"code": 2, "message": "boom"},
        "events": [{"timeUnixNano": "1700000000500000001", "name": "e",
                    "attributes": [{"key": "n", "value": _value("intValue", 3)}]}],
        **more,
    }  # fmt: skip
    resource = {"attributes": [{"key": "service.name", "value": _value("stringValue", "app")}]}
    scope_spans = [{"scope": {"name": "s"}, "spans": [span]}]
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": scope_spans}]})


@pytest.mark.parametrize(
    ("enum_style", "kind", "code"),
    [("current", "Server", "Error"), ("legacy", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR")],
)
def test_the_exporter_rows_hold_what_the_exporter_writes(enum_style, kind, code):
    attributes = [{"key": f"k{i:02}", "value": v} for i, (v, _) in enumerate(GO_STRINGS)]
    attributes.append({"key": "$dollar", "value": _value("stringValue", "x")})
    spans = decode_traces_json(_span_request(attributes).encode()).table
    engine = chdb_engine()
    insert_as_exporter(engine, spans=spans, enum_style=enum_style)
    (row,) = select(engine, "otel_traces", TRACE_COLUMNS).to_pylist()
    expected = {f"k{i:02}": text for i, (_, text) in enumerate(GO_STRINGS)}
    assert row["SpanAttributes"] == sorted({**expected, "$dollar": "x"}.items())
    assert (row["SpanKind"], row["StatusCode"], row["StatusMessage"]) == (kind, code, "boom")
    assert (row["ParentSpanId"], row["TraceState"], row["ServiceName"]) == ("", "", "app")
    assert row["Duration"] == 1_000_000_001
    assert row["Events.Name"] == ["e"] and row["Events.Attributes"] == [[("n", "3")]]
    assert [t.value for t in row["Events.Timestamp"]] == [1700000000500000001]
    assert row["Timestamp"].value == 1700000000123456789


def test_restored_types_and_a_numeric_conversation_id_stays_a_string():
    attributes = [
        {"key": "gen_ai.conversation.id", "value": _value("stringValue", "12345")},
        {"key": "otel_threads.turn_id", "value": _value("stringValue", "7")},
        {"key": "otel_threads.is_turn", "value": _value("boolValue", True)},
        {"key": "gen_ai.usage.input_tokens", "value": _value("intValue", "12")},
        {"key": "gen_ai.usage.cost", "value": _value("doubleValue", 0.25)},
        {"key": "gen_ai.response.finish_reasons",
         "value": _value("arrayValue", {"values": [_value("stringValue", "stop")]})},
        {"key": "retries", "value": _value("intValue", "2")},
    ]  # fmt: skip
    spans = decode_traces_json(_span_request(attributes).encode()).table
    engine = chdb_engine()
    insert_as_exporter(engine, spans=spans)
    (row,) = from_exporter_spans(select(engine, "otel_traces", TRACE_COLUMNS)).to_pylist()
    assert row["attributes"] == json.dumps(  # sorted by key, as the exporter's map is
        {
            "gen_ai.conversation.id": "12345",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.usage.cost": 0.25,
            "gen_ai.usage.input_tokens": 12,
            "otel_threads.is_turn": True,
            "otel_threads.turn_id": "7",
            "retries": "2",  # not read as a number anywhere: stays the exporter's text
        },
        separators=(",", ":"),
    )
    marks = (row["thread_id"], row["turn_id"], row["is_turn"], row["previous_turn_id"])
    assert marks == ("12345", "7", True, None)


def test_events_links_and_an_unfinished_span_come_back():
    link = {
        "traceId": "0af7651916cd43dd8448eb211c80319d",
        "spanId": "b7ad6b7169203332",
        "traceState": "k=v",
        "flags": 1,
        "attributes": [{"key": "otel_threads.is_turn", "value": _value("boolValue", False)}],
    }
    plain = {"traceId": "0af7651916cd43dd8448eb211c80319e", "spanId": "b7ad6b7169203333"}
    attributes = [{"key": "x", "value": _value("intValue", 1)}]
    spans = decode_traces_json(_span_request(attributes, end="0", links=[link, plain]).encode())
    spans = spans.table
    engine = chdb_engine()
    insert_as_exporter(engine, spans=spans)
    rows = select(engine, "otel_traces", TRACE_COLUMNS)
    assert rows["Duration"].to_pylist() == [2**64 - 1700000000123456789]  # Go's uint64 wrap
    assert rows["Links.TraceState"].to_pylist() == [["k=v", ""]]
    back = from_exporter_spans(rows)
    assert_same_columns(span_rows(back, lossy=False), span_rows(spans, lossy=True))
    assert back["end_time"].to_pylist() == back["duration_ms"].to_pylist() == [None]


def test_non_finite_doubles_come_back_tagged():
    attributes = [{"key": "gen_ai.usage.cost", "value": _value("doubleValue", "Infinity")}]
    spans = decode_traces_json(_span_request(attributes).encode()).table
    (row,) = from_exporter_spans(to_exporter_spans(spans)).to_pylist()
    assert json.loads(row["attributes"]) == {"gen_ai.usage.cost": {"$double": "Infinity"}}
    assert not math.isnan(row["duration_ms"])


# --- the round trip -----------------------------------------------------------------


@pytest.mark.parametrize("enum_style", ["current", "legacy"])
def test_real_producer_spans_come_back_but_for_what_the_exporter_drops(enum_style):
    spans = decoded("traces")
    engine = chdb_engine()
    insert_as_exporter(engine, spans=spans, enum_style=enum_style)
    back = from_exporter_spans(select(engine, "otel_traces", TRACE_COLUMNS))
    assert back.schema == SPAN_SCHEMA
    assert_same_columns(span_rows(back, lossy=False), span_rows(spans, lossy=True))
    assert back.column("parent_span_id").null_count == spans.column("parent_span_id").null_count


def test_real_producer_logs_come_back_but_for_what_the_exporter_drops():
    logs = decoded("logs")
    engine = chdb_engine()
    insert_as_exporter(engine, logs=logs)
    back = from_exporter_logs(select(engine, "otel_logs", LOG_COLUMNS))
    assert back.schema == LOG_SCHEMA
    assert_same_columns(log_rows(back, lossy=False), log_rows(logs, lossy=True))
    bodies = [json.loads(b) for b in back.column("body").to_pylist() if b is not None]
    assert any(type(b) is dict for b in bodies)  # map bodies arrive as JSON text


def test_a_batch_delivered_twice_maps_to_its_rows_once():
    spans, logs = decoded("traces"), decoded("logs")
    engine = chdb_engine()
    insert_as_exporter(engine, spans=spans, logs=logs)
    once_logs = from_exporter_logs(select(engine, "otel_logs", LOG_COLUMNS))
    insert_as_exporter(engine, spans=spans, logs=logs)  # the retry of a whole batch
    trace_rows = select(engine, "otel_traces", TRACE_COLUMNS)
    log_rows_twice = select(engine, "otel_logs", LOG_COLUMNS)
    assert (trace_rows.num_rows, log_rows_twice.num_rows) == (2 * len(spans), 2 * len(logs))
    back = from_exporter_spans(trace_rows)
    assert_same_columns(span_rows(back, lossy=False), span_rows(spans, lossy=True))
    back_logs = from_exporter_logs(log_rows_twice)
    assert_same_columns(log_rows(back_logs, lossy=False), log_rows(logs, lossy=True))
    ids = back_logs.column("record_id").to_pylist()
    assert len(set(ids)) == len(ids) == len(logs)
    assert sorted(ids) == sorted(once_logs.column("record_id").to_pylist())


def _as_a_server_sends_it(table: pa.Table, strings: str) -> pa.Table:
    """Strings as binary or as dictionaries (LowCardinality), as a server's Arrow may be."""
    columns = []
    for column in table.columns:
        if column.type == pa.string():
            column = (
                column.dictionary_encode() if strings == "dictionary" else column.cast(pa.binary())
            )
        elif pa.types.is_map(column.type):
            column = column.cast(pa.map_(pa.binary(), pa.binary()))
        elif pa.types.is_list(column.type) and column.type.value_type == pa.string():
            column = column.cast(pa.list_(pa.binary()))
        columns.append(column)
    return pa.table(columns, names=table.column_names)


@pytest.mark.parametrize("strings", ["binary", "dictionary"])
def test_rows_with_binary_strings_or_dictionaries_map_the_same(strings):
    spans, logs = decoded("traces"), decoded("logs")
    engine = chdb_engine()
    insert_as_exporter(engine, spans=spans, logs=logs)
    trace_rows = select(engine, "otel_traces", TRACE_COLUMNS)
    log_rows_ = select(engine, "otel_logs", LOG_COLUMNS)
    assert from_exporter_spans(_as_a_server_sends_it(trace_rows, strings)).equals(
        from_exporter_spans(trace_rows)
    )
    assert from_exporter_logs(_as_a_server_sends_it(log_rows_, strings)).equals(
        from_exporter_logs(log_rows_)
    )
