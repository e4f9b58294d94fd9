"""The derive worker on ClickHouse (chDB): the same rows as a DuckDB file, whatever the order,
the duplicates, the shards, or a worker that dies mid-batch.

Each scenario's spans come from a real TracerProvider with ThreadSpanProcessor, encoded
by the SDK's OTLP encoder and decoded by ours; the file side derives them batch by batch
as a collector does, the ClickHouse side gets them as the clickhouseexporter writes them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest
from ch_equivalence import check_store, compare, derive_on_clickhouse, file_views, raw_tables
from chdb_store import chdb_engine
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from stored_app import App

from otel_threads import thread
from otel_threads.clickhouse.exporter_rows import insert_as_exporter
from otel_threads.clickhouse.schema import init_schema
from otel_threads.clickhouse.worker import Worker, owner, parse_shard
from otel_threads.otlp.decode import decode_logs_json, decode_traces_json, decode_traces_protobuf
from otel_threads.otlp.tables import LOG_SCHEMA
from otel_threads.store.derive import Deriver
from otel_threads.store.insert import insert_batch
from otel_threads.store.schema import connect

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
NO_LOGS = LOG_SCHEMA.empty_table()


def spans_of(app: App, names: list[str] | None = None) -> pa.Table:
    return decode_traces_protobuf(encode_spans(app.spans(names)).SerializeToString()).table


def file_store(path: Path, batches: list[tuple[pa.Table, pa.Table]]) -> str:
    """A DuckDB store that took ``batches`` one after the other, derived after each."""
    con = connect(str(path))
    try:
        seq = 1
        for spans, logs in batches:
            con.execute("BEGIN TRANSACTION")
            for kind, table in (("spans", spans), ("logs", logs)):
                insert_batch(con, kind, table, seq, 0, queue_derive=True)
                seq += table.num_rows
            con.execute("COMMIT")
            deriver = Deriver(con)
            while deriver.refresh():
                pass
    finally:
        con.close()
    return str(path)


def conversation(app: App, thread_id: str, turns: int) -> None:
    for i in range(turns):
        with thread(thread_id), app.tracer.start_as_current_span(f"{thread_id}-turn-{i}"):
            with app.tracer.start_as_current_span("llm"):
                pass


def linked_chain(app: App) -> None:
    """chat-1's first turn, then two turns that carry no thread id, only the turn before."""
    with thread("chat-1") as t, app.tracer.start_as_current_span("ask-1"):
        pass
    previous = t.last_turn_id
    for name in ("ask-2", "ask-3"):
        with thread(previous_turn_id=previous) as t, app.tracer.start_as_current_span(name):
            with app.tracer.start_as_current_span(f"{name}.step"):
                pass
        previous = t.last_turn_id


def fork(app: App) -> None:
    """Two answers to the same turn (a regenerate): a fork."""
    with thread("f-1") as t, app.tracer.start_as_current_span("ask"):
        pass
    first = t.last_turn_id
    for name in ("answer-a", "answer-b"):
        with thread("f-1", previous_turn_id=first), app.tracer.start_as_current_span(name):
            pass


@pytest.mark.parametrize("enum_style", ["current", "legacy"])
def test_threads_linked_turns_and_forks_equal_the_files(tmp_path, enum_style):
    app = App()
    conversation(app, "c-1", 3)
    linked_chain(app)
    fork(app)
    conversation(app, "c-2", 1)
    path = file_store(tmp_path / "f.duckdb", [(spans_of(app), NO_LOGS)])
    check_store(path, enum_style=enum_style)


def fixture_tables() -> tuple[pa.Table, pa.Table]:
    """Every real-producer fixture's spans and log records, decoded."""
    spans, logs = [], []
    for traces in sorted(FIXTURES.glob("*.traces.json")):
        spans.append(decode_traces_json(traces.read_bytes()).table)
        logs_path = traces.with_name(traces.name.replace(".traces.", ".logs."))
        if logs_path.exists():
            logs.append(decode_logs_json(logs_path.read_bytes()).table)
    return pa.concat_tables(spans), pa.concat_tables(logs)


def test_real_producers_llm_calls_and_messages_equal_the_files(tmp_path):
    spans, logs = fixture_tables()
    assert logs.num_rows and len(list(FIXTURES.glob("*.traces.json"))) > 20
    path = file_store(tmp_path / "producers.duckdb", [(spans, logs)])
    check_store(path)


def test_a_batch_inserted_twice_and_children_before_parents(tmp_path):
    app = App()
    conversation(app, "c-1", 2)
    spans = spans_of(app)
    # (the file takes them once, in one batch)
    path = file_store(tmp_path / "f.duckdb", [(spans, NO_LOGS)])
    expected = file_views(path)
    engine = chdb_engine("twice")
    init_schema(engine)
    roots = pa.compute.is_null(spans.column("parent_span_id"))
    children, parents = spans.filter(pa.compute.invert(roots)), spans.filter(roots)
    worker = Worker(engine, settle_s=0)
    try:
        insert_as_exporter(engine, spans=children)
        worker.run_once()  # children alone first: their turns have not arrived
        insert_as_exporter(engine, spans=parents)
        insert_as_exporter(engine, spans=spans)  # and everything redelivered
        worker.run_once()
    finally:
        worker.close()
    assert compare(expected, engine) == {}


def test_a_linked_turn_before_the_turn_it_names(tmp_path):
    app = App()
    linked_chain(app)
    spans = spans_of(app)
    first = spans.filter(pa.compute.equal(spans.column("name"), "ask-1"))
    rest = spans.filter(pa.compute.not_equal(spans.column("name"), "ask-1"))
    path = file_store(tmp_path / "f.duckdb", [(spans, NO_LOGS)])
    engine = chdb_engine("late")
    init_schema(engine)
    worker = Worker(engine, settle_s=0)
    try:
        insert_as_exporter(engine, spans=rest)
        worker.run_once()
        assert engine.rows("SELECT count() FROM threads") == [(0,)]  # nothing to join yet
        insert_as_exporter(engine, spans=first)
        worker.run_once()
    finally:
        worker.close()
    assert compare(file_views(path), engine) == {}
    assert engine.rows("SELECT turn_count FROM threads") == [(3,)]


def test_two_workers_on_disjoint_shards_derive_each_thread_once(tmp_path):
    app = App()
    for i in range(8):
        conversation(app, f"s-{i}", 2)
    linked_chain(app)  # (its linked turns carry no thread id: sharded by trace, handed over)
    path = file_store(tmp_path / "f.duckdb", [(spans_of(app), NO_LOGS)])
    spans, logs = raw_tables(path)
    engine = derive_on_clickhouse(spans, logs, shards=2)
    assert compare(file_views(path), engine) == {}
    written = engine.rows(
        "SELECT thread_id, count() FROM otel_threads_thread_gens GROUP BY thread_id"
    )
    assert {t for t, _ in written} == {f"s-{i}" for i in range(8)} | {"chat-1"}
    shards = {owner(t, 2) for t, _ in written}
    assert shards == {0, 1}  # (both shards had threads to write: the test means something)


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    app = App()
    conversation(app, "k-1", 2)
    conversation(app, "k-2", 1)
    path = file_store(tmp_path / "f.duckdb", [(spans_of(app), NO_LOGS)])
    spans, _ = raw_tables(path)
    engine = chdb_engine("killed")
    init_schema(engine)
    insert_as_exporter(engine, spans=spans)
    worker = Worker(engine, settle_s=0)
    real_insert = engine.insert
    calls = []

    def dies_on_the_third_insert(table, rows):
        calls.append(table)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        real_insert(table, rows)

    monkeypatch.setattr(engine, "insert", dies_on_the_third_insert)
    with pytest.raises(KeyboardInterrupt):
        worker.run_once()
    worker.close()
    monkeypatch.setattr(engine, "insert", real_insert)
    # some derived rows were written, no generation: the views show nothing of them
    assert engine.rows("SELECT count() FROM otel_threads_threads_gen") != [(0,)]
    assert engine.rows("SELECT count() FROM threads") == [(0,)]
    restarted = Worker(engine, settle_s=0)
    try:
        restarted.run_once()
        restarted.run_once()  # (nothing new: the same rows stay)
    finally:
        restarted.close()
    assert compare(file_views(path), engine) == {}


def test_a_worker_with_older_inputs_does_not_win(tmp_path):
    app = App()
    conversation(app, "o-1", 1)
    first = spans_of(app)
    conversation(app, "o-1", 1)
    both = spans_of(app)
    engine = chdb_engine("stale")
    init_schema(engine)
    insert_as_exporter(engine, spans=first)
    stale = Worker(engine, settle_s=0)
    fresh = Worker(engine, settle_s=0)
    try:
        stale.run_once()
        insert_as_exporter(engine, spans=both)
        fresh.run_once()
        assert engine.rows("SELECT turn_count FROM threads") == [(2,)]
        # a worker that read the thread before its second turn arrived writes last (a
        # newer generation, from older inputs): it must not win
        stale.local.derive(first, NO_LOGS)
        stale._write(["o-1"], 1, set())
        assert engine.rows("SELECT count() FROM otel_threads_thread_gens") == [(3,)]
        assert engine.rows("SELECT turn_count FROM threads") == [(2,)]
    finally:
        stale.close()
        fresh.close()


def test_shards_parse_and_own_every_thread_exactly_once():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    ids = [f"thread-{i}" for i in range(200)]
    owners = [owner(t, 3) for t in ids]
    assert set(owners) == {0, 1, 2} and owners == [owner(t, 3) for t in ids]


def test_vacuum_deletes_superseded_generations_and_keeps_the_views(tmp_path):
    app = App()
    conversation(app, "v-1", 1)
    first = spans_of(app)
    conversation(app, "v-1", 1)
    both = spans_of(app)
    path = file_store(tmp_path / "f.duckdb", [(both, NO_LOGS)])
    engine = chdb_engine("vacuum")
    init_schema(engine)
    worker = Worker(engine, settle_s=0)
    try:
        insert_as_exporter(engine, spans=first)
        worker.run_once()
        insert_as_exporter(engine, spans=both)
        worker.run_once()
        # and rows of a generation that was never finished (a worker died)
        engine.command("INSERT INTO otel_threads_turns_gen (gen, thread_id) VALUES (1, 'v-1')")
        assert engine.rows("SELECT count(DISTINCT gen) FROM otel_threads_turns_gen") == [(3,)]
        worker.vacuum(after_s=3600)  # nothing old enough yet: only the unfinished one
        assert engine.rows("SELECT count(DISTINCT gen) FROM otel_threads_turns_gen") == [(2,)]
        worker.vacuum(after_s=0)
    finally:
        worker.close()
    for table in ("turns", "threads", "span_threads", "thread_traces"):
        gens = engine.rows(f"SELECT count(DISTINCT gen) FROM otel_threads_{table}_gen")
        assert gens == [(1,)], table
    assert engine.rows("SELECT count() FROM otel_threads_thread_gens") == [(1,)]
    assert compare(file_views(path), engine) == {}


def test_one_insert_of_more_traces_than_a_batch_takes_is_derived_whole(tmp_path):
    """The traces of one insert arrive at one instant: a batch takes them all, however
    many, rather than stopping at its size and moving past the instant."""
    app = App()
    for i in range(30):
        conversation(app, f"many-{i}", 1)
    spans = spans_of(app)
    engine = chdb_engine("many")
    init_schema(engine)
    insert_as_exporter(engine, spans=spans)  # 30 traces, one insert
    worker = Worker(engine, settle_s=0, batch_arrivals=8)
    try:
        results = worker.run_once()
    finally:
        worker.close()
    assert results[0].arrivals == 30
    assert engine.rows("SELECT count() FROM threads") == [(30,)]


def test_a_late_span_without_a_thread_id_reaches_its_threads_shard(tmp_path):
    """A span that arrives after its trace was derived, and carries no thread id itself
    (a late child from a service without ThreadSpanProcessor), is derived by the shard of
    the trace's thread, whichever shard its trace id falls in."""
    app, other = App(), App(first=1000, marks=False, service="other")
    for i in range(6):
        with thread(f"late-{i}"), app.tracer.start_as_current_span("turn") as turn:
            pass
        context = trace.set_span_in_context(turn)
        other.tracer.start_span("late-child", context=context).end()
    first, late = spans_of(app), spans_of(other)
    assert late.column("thread_id").null_count == late.num_rows  # no thread id on them
    path = file_store(tmp_path / "f.duckdb", [(pa.concat_tables([first, late]), NO_LOGS)])
    engine = chdb_engine("latechild")
    init_schema(engine)
    workers = [Worker(engine, (i, 2), settle_s=0) for i in range(2)]
    try:
        insert_as_exporter(engine, spans=first)
        for w in workers:
            w.run_once()
        insert_as_exporter(engine, spans=late)
        for w in workers:
            w.run_once()
    finally:
        for w in workers:
            w.close()
    assert compare(file_views(path), engine) == {}
    assert engine.rows("SELECT sum(span_count) FROM threads") == [(12,)]


def test_a_growing_thread_reads_back_only_its_new_traces_and_derives_as_a_file(tmp_path):
    """Turns arriving one insert at a time: the worker reads the thread whole once, then
    only each new trace (its kept store derives the rest from the kept rows), and ends
    with the file's rows, through a late turn and a linked one; emptied (a failure, or
    past its size), it reads the thread whole again and still agrees."""
    app = App()
    conversation(app, "grow", 8)
    with thread(previous_turn_id=format(1, "016x")), app.tracer.start_as_current_span("fork"):
        pass
    spans = spans_of(app)
    traces = sorted(set(spans.column("trace_id").to_pylist()))
    late = traces[3]  # arrives last
    order = [t for t in traces if t != late] + [late]
    path = file_store(tmp_path / "f.duckdb", [(spans, NO_LOGS)])
    engine = chdb_engine("grow")
    init_schema(engine)
    worker = Worker(engine, settle_s=0)
    read: list[int] = []
    try:
        for i, trace_id in enumerate(order):
            one = spans.filter(pa.compute.equal(spans.column("trace_id"), trace_id))
            insert_as_exporter(engine, spans=one)
            if i == 6:
                worker._forget()  # as after a failure: the next batch reads it whole again
            read.append(sum(r.spans for r in worker.run_once()))
    finally:
        worker.close()
    assert compare(file_views(path), engine) == {}
    per_trace = [spans.filter(pa.compute.equal(spans.column("trace_id"), t)).num_rows
                 for t in order]  # fmt: skip
    assert read[:6] == per_trace[:6]  # each batch read its new trace only
    assert read[6] == sum(per_trace[:7])  # emptied: the thread read whole again
    assert read[7:] == per_trace[7:]  # (a linked turn to a thread held whole reads it not)
    # and it wrote each trace's rows of the per-trace views once (its piece), but all of
    # them again after it was emptied (it no longer knew which pieces it had written)
    written = engine.rows(
        "SELECT count() FROM otel_threads_span_threads_gen GROUP BY gen ORDER BY gen"
    )
    assert [n for (n,) in written] == [*per_trace[:6], sum(per_trace[:7]), *per_trace[7:]]


def test_a_trace_that_resolves_otherwise_is_written_again_though_it_did_not_arrive(tmp_path):
    """A generation names the earlier piece of a trace that neither arrived nor resolved
    otherwise, and writes the rows of one whose resolution changed (here as if it had: the
    worker's record of what it wrote for it says another resolution)."""
    app = App()
    conversation(app, "res", 3)
    spans = spans_of(app)
    traces = list(dict.fromkeys(spans.column("trace_id").to_pylist()))
    path = file_store(tmp_path / "f.duckdb", [(spans, NO_LOGS)])
    engine = chdb_engine("res")
    init_schema(engine)
    worker = Worker(engine, settle_s=0)

    def only(trace_id: str) -> pa.Table:
        return spans.filter(pa.compute.equal(spans.column("trace_id"), trace_id))

    def written() -> set[str]:
        rows = engine.rows(
            "SELECT DISTINCT trace_id FROM otel_threads_span_threads_gen "
            "WHERE gen = (SELECT max(gen) FROM otel_threads_thread_gens)"
        )
        return {r[0] for r in rows}

    try:
        insert_as_exporter(engine, spans=pa.concat_tables([only(traces[0]), only(traces[1])]))
        worker.run_once()
        piece, mark = worker.pieces["res"][traces[0]]
        worker.pieces["res"][traces[0]] = (piece, mark + 1)  # (resolved otherwise since)
        insert_as_exporter(engine, spans=only(traces[2]))
        worker.run_once()
        assert written() == {traces[0], traces[2]}  # not traces[1]: its piece is named
    finally:
        worker.close()
    assert compare(file_views(path), engine) == {}


def test_an_older_exporters_logs_table_without_event_name_derives_as_the_file(tmp_path):
    """Exporters before EventName (records named by their ``event.name`` attribute, as SDKs
    did then) made otel_logs without that column: the worker reads it as empty."""
    import json

    base = FIXTURES / "semconv_1_28_events"
    doc = json.loads(base.with_suffix(".logs.json").read_text())
    for resource in doc["resourceLogs"]:
        for scope in resource["scopeLogs"]:
            for record in scope["logRecords"]:
                name = record.pop("eventName", None)
                keys = {a["key"] for a in record.get("attributes", [])}
                if name and "event.name" not in keys:
                    record.setdefault("attributes", []).append(
                        {"key": "event.name", "value": {"stringValue": name}}
                    )
    logs = decode_logs_json(json.dumps(doc).encode()).table
    spans = decode_traces_json(base.with_suffix(".traces.json").read_bytes()).table
    path = file_store(tmp_path / "old.duckdb", [(spans, logs)])
    expected = file_views(path)
    conventions = set(expected["messages"].column("convention").to_pylist())
    assert "semconv-1.28-events" in conventions  # (the messages come from the records)
    engine = chdb_engine("old-logs")
    init_schema(engine)
    insert_as_exporter(engine, spans=spans, logs=logs)
    engine.command("ALTER TABLE otel_logs DROP COLUMN EventName")
    worker = Worker(engine, settle_s=0)
    try:
        worker.run_once()
    finally:
        worker.close()
    assert compare(expected, engine) == {}


def test_a_reader_keeps_the_threads_it_read_and_reads_back_only_what_changed(tmp_path):
    """ThreadsClient on ClickHouse: two threads read are both kept (reading one does not
    let go of the other); a new turn of one reads back that turn's trace alone, and the
    detail still equals the file's."""
    from otel_threads import ThreadsClient

    app = App()
    conversation(app, "live", 3)
    conversation(app, "other", 2)
    before = spans_of(app)
    conversation(app, "live", 1)
    after = spans_of(app)
    new = set(after.column("trace_id").to_pylist()) - set(before.column("trace_id").to_pylist())
    path = file_store(tmp_path / "f.duckdb", [(after, NO_LOGS)])
    engine = chdb_engine("reader")
    init_schema(engine)
    worker = Worker(engine, settle_s=0)
    client = ThreadsClient(engine.url)
    read: list[list[str]] = []
    spans = client.clickhouse.loader.spans

    def counted(traces):
        read.append(sorted(traces))
        return spans(traces)

    client.clickhouse.loader.spans = counted
    try:
        insert_as_exporter(engine, spans=before)
        worker.run_once()
        assert len(client.thread("live").turns) == 3
        assert len(client.thread("other").turns) == 2
        read.clear()
        assert len(client.thread("live").turns) == 3  # both kept: nothing read again
        assert len(client.thread("other").turns) == 2
        assert read == []
        turn = after.filter(pa.compute.is_in(after.column("trace_id"), pa.array(sorted(new))))
        insert_as_exporter(engine, spans=turn)
        worker.run_once()
        got = client.thread("live")
        assert read == [sorted(new)]  # the new turn's trace alone
        want = ThreadsClient(path).thread("live")
        assert dataclasses.asdict(got) == dataclasses.asdict(want)
        client.clickhouse.forget()
        read.clear()
        assert dataclasses.asdict(client.thread("live")) == dataclasses.asdict(want)
        assert len(read[0]) == 4  # let go: read whole again
    finally:
        worker.close()
        client.close()


def test_past_its_size_the_worker_lets_idle_threads_go_and_reads_them_whole_again(tmp_path):
    """Past keep_spans, the threads touched longest ago leave the kept store (not those at
    work, nor two that a link ties together, though they come first); the next turn of
    one that left reads it back whole, and every view still equals the file's."""
    app = App()
    conversation(app, "idle-1", 3)
    conversation(app, "idle-2", 3)
    with thread("a-x") as t, app.tracer.start_as_current_span("a"):
        pass
    with thread("a-y", previous_turn_id=t.last_turn_id), app.tracer.start_as_current_span("b"):
        pass
    first = spans_of(app)
    conversation(app, "busy", 4)
    busy = spans_of(app)
    conversation(app, "idle-1", 1)
    everything = spans_of(app)
    path = file_store(tmp_path / "f.duckdb", [(everything, NO_LOGS)])

    def traces(table: pa.Table) -> list[str]:
        return list(dict.fromkeys(table.column("trace_id").to_pylist()))

    def only(table: pa.Table, ids: list[str]) -> pa.Table:
        return table.filter(pa.compute.is_in(table.column("trace_id"), pa.array(ids)))

    engine = chdb_engine("evict")
    init_schema(engine)
    worker = Worker(engine, settle_s=0, keep_spans=14)
    try:
        insert_as_exporter(engine, spans=first)
        worker.run_once()
        assert worker.kept == {"idle-1", "idle-2", "a-x", "a-y"}
        for trace_id in traces(busy)[len(traces(first)) :]:  # busy's turns, one at a time
            insert_as_exporter(engine, spans=only(busy, [trace_id]))
            worker.run_once()
        assert worker.kept == {"busy", "a-x", "a-y"}  # the idle ones left, oldest first
        assert worker.local.span_count() <= 14
        insert_as_exporter(engine, spans=only(everything, traces(everything)[-1:]))
        assert [r.spans for r in worker.run_once()] == [8]  # idle-1 read back whole
        assert "idle-1" in worker.kept
    finally:
        worker.close()
    assert compare(file_views(path), engine) == {}
