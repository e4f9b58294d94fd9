"""Reading threads from ClickHouse (chDB): the threads query with every filter and sort, one
thread's detail, and read-only SQL, answered as a DuckDB file holding the same spans answers.

The spans are test_thread_filters' four threads, sent by real exporters to a real
collector; its file's raw rows then go to chDB as the clickhouseexporter writes them.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest
from ch_equivalence import derive_on_clickhouse, raw_tables
from test_thread_filters import CASES, converse

from otel_threads import ThreadsClient, ThreadsQueryReq
from otel_threads.client import ThreadsClientError
from otel_threads.collector import Collector, Config

ANY = ("127.0.0.1", 0)
#: Filters on annotations made through the API: a store on ClickHouse takes them over OTLP
#: only (docs/clickhouse.md), so there these match nothing.
API_ANNOTATIONS = {"thumbs", "thumbs=down"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """(a client on the file, a client on chDB holding the same spans)"""
    db = str(tmp_path_factory.mktemp("r") / "r.duckdb")
    c = Collector(Config(parse_workers=0, db=db, grpc=ANY, http=None, api=ANY))
    c.start()
    try:
        converse(c.endpoints.grpc)
        assert c.store.sync(60)
    finally:
        c.stop()
    engine = derive_on_clickhouse(*raw_tables(db))
    yield ThreadsClient(db), ThreadsClient(engine.url)


def _rows(res) -> list[dict]:
    return [dataclasses.asdict(t) for t in res.threads]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_each_filter_as_on_the_file(stores, given, expected):
    file, ch = stores
    req = ThreadsQueryReq(filter=given, sort_by=[{"field": "thread_id", "direction": "asc"}])
    on_file, on_ch = file.threads_query(req), ch.threads_query(req)
    if given.get("annotation") in API_ANNOTATIONS:
        assert (on_ch.threads, on_ch.total) == ([], 0)
        return
    assert [t.thread_id for t in on_ch.threads] == expected
    assert on_ch.total == len(expected)
    assert _rows(on_ch) == _rows(on_file)


@pytest.mark.parametrize(
    "sort",
    [
        [{"field": "last_updated", "direction": "desc"}],
        [{"field": "turn_count", "direction": "desc"}, {"field": "thread_id", "direction": "asc"}],
        [{"field": "cost_usd", "direction": "asc"}],
        [{"field": "llm_call_count", "direction": "desc"}],
        [{"field": "input_tokens", "direction": "asc"}],
    ],
)
def test_sorting_and_paging_as_on_the_file(stores, sort):
    file, ch = stores
    for offset in (0, 1, 3):
        req = ThreadsQueryReq(sort_by=sort, limit=2, offset=offset)
        on_file, on_ch = file.threads_query(req), ch.threads_query(req)
        assert _rows(on_ch) == _rows(on_file)
        assert on_ch.total == on_file.total == 4


def test_one_threads_detail_as_on_the_file(stores):
    file, ch = stores
    for thread_id in ("chat", "refund-tool", "refund-error", "quiet"):
        want, got = file.thread(thread_id), ch.thread(thread_id)
        want.annotations = [a for a in want.annotations if a.source != "api"]
        want.thread.annotation_count = got.thread.annotation_count
        assert dataclasses.asdict(got) == dataclasses.asdict(want), thread_id
    page = ch.thread_page("chat", turn_limit=1)
    assert [t.turn_index for t in page.turns] == [1] and page.page.next is not None
    with pytest.raises(KeyError):
        ch.thread("no-such-thread")


def test_sql_is_read_only_clickhouse_sql(stores, monkeypatch):
    _, ch = stores
    columns, rows = ch.sql("SELECT thread_id, turn_count FROM threads ORDER BY thread_id")
    assert columns == ["thread_id", "turn_count"]
    assert rows == [["chat", 3], ["quiet", 1], ["refund-error", 1], ["refund-tool", 1]]
    assert ch.arrow("SELECT count() AS n FROM turns;").column("n").to_pylist() == [6]
    for bad in (
        "INSERT INTO otel_threads_arrivals (TraceId, Hint) VALUES ('x', '')",
        "DROP TABLE otel_traces",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT * FROM file('/etc/hostname', 'LineAsString') SETTINGS readonly = 0",
        "SELECT 1; DROP TABLE otel_traces",
        "",
    ):
        with pytest.raises(ValueError):
            ch.sql(bad)
    assert ch.sql("SELECT count() FROM otel_traces")[1][0][0] > 0  # nothing was dropped
    with pytest.raises(ValueError, match="no params"):
        ch.arrow("SELECT 1", ["x"])
    # /arrow's answer comes a batch at a time, and stops past its size, in one line
    reader = ch.clickhouse
    stream = reader.arrow_stream("SELECT thread_id FROM threads ORDER BY 1", 1 << 20)
    assert pa.ipc.open_stream(stream).read_all().column(0).to_pylist()[0] == "chat"
    empty = reader.arrow_stream("SELECT thread_id FROM threads WHERE 0", 1 << 20)
    assert pa.ipc.open_stream(empty).read_all().schema.names == ["thread_id"]
    pulled: list[int] = []
    batches = reader.engine.batches

    def counted(sql, params=None):
        for batch in batches(sql, params):
            pulled.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(reader.engine, "batches", counted)
    with pytest.raises(ValueError, match=r"^the answer is larger than 1 MiB; narrow it"):
        reader.arrow_stream("SELECT repeat('x', 100) AS s FROM numbers(10000000)", 1 << 20)
    assert 0 < sum(pulled) < 1_000_000  # (it stopped reading: 1 GB would have come)
    with pytest.raises(ValueError, match="readonly"):
        reader.arrow_stream("SELECT * FROM file('/etc/hostname', 'LineAsString')", 1 << 20)


def test_annotating_needs_a_file_or_an_api(stores):
    _, ch = stores
    with pytest.raises(ThreadsClientError, match="arrive over OTLP"):
        ch.annotate("chat", "thumbs", label="up")
    with pytest.raises(ThreadsClientError, match="arrive over OTLP"):
        ch.pending_evaluations("judge")
