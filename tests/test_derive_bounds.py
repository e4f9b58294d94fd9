"""No thread stalls or blows up derivation for the others (issue 12, item 8).

1. A 30,000-turn chain of previous_turn_id links that loops: an ordinary thread that
   arrives with it is derived first (or at the latest right after it), and resolving the
   chain takes a bounded number of SQL statements, however long the chain is.
2. A refresh takes a bounded batch off the queue (traces, bytes of content); the rest
   waits for the next refresh, and the kept rows are those of a derivation from scratch.
3. Huge LLM calls derive a chunk of traces at a time, with their whole texts in the
   detail.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from stored_app import KEPT_VIEWS, assert_turn_keys_cover, kept_sql

from otel_threads import thread
from otel_threads.collector import Collector, Config
from otel_threads.otlp.decode import decode_logs_json, decode_traces_json, decode_traces_protobuf
from otel_threads.query import query_thread
from otel_threads.store import connect, shared_views
from otel_threads.store.derive import WIDEN, Deriver
from otel_threads.store.insert import insert_batch
from otel_threads.store.store import Store as FileStore
from otel_threads.testing import capture

ANY = ("127.0.0.1", 0)
T0 = 1_790_000_000 * 10**9
CHAIN = 30_000
VIEWS = KEPT_VIEWS


def _kv(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def spans_table(spans: list[dict]):
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_kv("service.name", "app")]},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    return decode_traces_json(json.dumps(body).encode()).table


def span(
    trace: int, span_id: int, name: str, start: int, attrs: dict, parent: int | None = None
) -> dict:
    out = {
        "traceId": format(trace, "032x"),
        "spanId": format(span_id, "016x"),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000),
        "attributes": [_kv(k, v) for k, v in attrs.items()],
    }
    if parent is not None:
        out["parentSpanId"] = format(parent, "016x")
    return out


def looping_chain(n: int, first: int = 1) -> list[dict]:
    """``n`` turns without a thread id, each its own trace, turn k naming turn k-1 and
    the first naming the last: one loop of links (bad data)."""
    return [
        span(
            first + i,
            first + i,
            "turn",
            T0 + i * 1000,
            {
                "otel_threads.is_turn": True,
                "otel_threads.previous_turn_id": format(first + (i - 1) % n, "016x"),
            },
        )
        for i in range(n)
    ]


def ordinary(trace: int, thread_id: str) -> list[dict]:
    """One turn of ``thread_id``: a turn span and a child."""
    return [
        span(trace, trace, "ask", T0, {"gen_ai.conversation.id": thread_id}),
        span(
            trace, trace + 1, "step", T0 + 10, {"gen_ai.conversation.id": thread_id}, parent=trace
        ),
    ]


class Store:
    """A store written and derived in this process, step by step."""

    def __init__(self, path) -> None:
        self.con = connect(str(path))
        self.deriver = Deriver(self.con)
        self.seq = 1

    def insert(self, spans: list[dict]) -> None:
        """One commit of ``spans``, queued for derivation as the writer queues them."""
        self.con.execute("BEGIN TRANSACTION")
        self.seq += insert_batch(self.con, "spans", spans_table(spans), self.seq, 0, True)
        self.con.execute("COMMIT")

    def rows(self, query: str, *params) -> list[tuple]:
        return self.con.execute(query, list(params)).fetchall()

    def derive_all(self) -> int:
        refreshes = 0
        while self.deriver.refresh():
            refreshes += 1
        return refreshes

    def assert_kept_equals_scratch(self) -> None:
        for view in VIEWS:
            assert self.rows(kept_sql(view)) == self.rows(
                f"SELECT * FROM derive_{view} ORDER BY ALL"
            ), view
        assert_turn_keys_cover(self.con)


class Counting:
    """A connection that counts the statements run through it."""

    def __init__(self, con) -> None:
        self._con = con
        self.statements = 0

    def execute(self, *args, **kwargs):
        self.statements += 1
        return self._con.execute(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_an_ordinary_thread_is_derived_while_a_30k_turn_loop_of_links_is_pending(tmp_path):
    c = Collector(Config(db=str(tmp_path / "c.duckdb"), grpc=ANY, http=None, api=ANY))
    c.start()
    try:
        chain = looping_chain(CHAIN)
        for i in range(0, CHAIN, 3000):  # ten commits, each queued for derivation
            c.writer.write("spans", spans_table(chain[i : i + 3000]))
        c.writer.write("spans", spans_table(ordinary(10**9, "other")))
        deadline = time.monotonic() + 120  # generous: a slow machine only waits longer
        while True:
            with c.store.cursor() as cur:
                if cur.execute(
                    "SELECT turn_count FROM threads WHERE thread_id = 'other'"
                ).fetchall() == [(1,)]:
                    break
            assert time.monotonic() < deadline, "the ordinary thread was never derived"
            time.sleep(0.05)
        assert c.store.sync(120), "derivation did not finish"
        with c.store.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
            # the loop's turns have no thread, and nothing walks in circles
            assert cur.execute(
                "SELECT count(*), count(thread_id) FROM span_threads WHERE trace_id <> ?",
                [format(10**9, "032x")],
            ).fetchall() == [(CHAIN, 0)]
            assert cur.execute(
                "SELECT thread_id, turn_count, span_count FROM threads"
            ).fetchall() == [("other", 1, 2)]
            for view in ("span_threads", "threads"):  # kept == from scratch
                assert (
                    cur.execute(kept_sql(view)).fetchall()
                    == cur.execute(f"SELECT * FROM derive_{view} ORDER BY ALL").fetchall()
                ), view
    finally:
        c.stop()


def test_the_ordinary_thread_goes_first_in_the_refresh_that_takes_both(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.insert(looping_chain(1500))
    store.insert(ordinary(10**9, "other"))
    # one refresh: both in its batch; the ordinary trace derives in a transaction of
    # its own, before the chain's
    order = []
    derive_one = store.deriver._derive
    store.deriver._derive = lambda traces: (order.append(len(traces)), derive_one(traces))
    assert store.deriver.refresh() == 1501
    assert order == [1, 1500]
    assert store.rows("SELECT thread_id, turn_count FROM threads") == [("other", 1)]
    assert store.deriver.pending() == 0
    store.assert_kept_equals_scratch()


@pytest.mark.parametrize("length", [300, CHAIN])
def test_a_chain_is_resolved_in_a_bounded_number_of_statements(tmp_path, length):
    """A turn that arrives behind a loop of ``length`` links: the old walk took three
    statements per link; set-wise resolution takes the same few however long."""
    store = Store(tmp_path / "s.duckdb")
    store.insert(looping_chain(length))
    store.derive_all()
    # a late turn names a turn of the loop, and a turn names it in turn
    late, after = 10**8, 10**8 + 1
    store.insert(
        [
            span(
                late,
                late,
                "late",
                T0 - 10**9,
                {"otel_threads.is_turn": True, "otel_threads.previous_turn_id": format(7, "016x")},
            )
        ]
    )
    store.insert(
        [
            span(
                after,
                after,
                "after",
                T0 - 10**8,
                {
                    "otel_threads.is_turn": True,
                    "otel_threads.previous_turn_id": format(late, "016x"),
                },
            )
        ]
    )
    counting = Counting(store.con)
    store.deriver.con = counting
    walked = []
    linked = store.deriver._linked_traces

    def watch(traces):
        before = counting.statements
        found = linked(traces)
        walked.append(counting.statements - before)
        return found

    store.deriver._linked_traces = watch
    assert store.deriver.refresh() == 2
    assert max(walked) <= 16, walked  # each resolution: a few statements, not per link
    assert counting.statements <= 120, counting.statements
    store.deriver.con = store.con
    assert store.rows("SELECT count(*) FROM span_threads WHERE thread_id IS NOT NULL") == [(0,)]
    assert store.rows("SELECT count(*) FROM span_threads") == [(length + 2,)]
    assert store.deriver.pending() == 0
    if length < CHAIN:  # derive_span_threads from scratch over 30k traces is a test of its own
        store.assert_kept_equals_scratch()


def test_a_refresh_takes_a_bounded_batch_and_the_rows_match_a_derivation_from_scratch(tmp_path):
    """Threads and linked chains arrive spread over many traces; refreshes of at most 7
    traces (and the queued traces of their threads, WIDEN times that in all) and 3 kB
    (one trace at least) derive them as a derivation from scratch does."""
    store = Store(tmp_path / "s.duckdb")
    rnd = random.Random(5)
    spans = []
    for t in range(40):  # 40 traces: 8 threads of 5 turns, every other one linked
        thread_no, turn_no = t % 8, t // 8
        trace, turn = 1000 + t, 1000 + 10 * t
        attrs: dict = {"otel_threads.is_turn": True, "app.pad": "x" * rnd.randint(10, 900)}
        if thread_no % 2 and turn_no:  # linked: names the previous turn, no thread id
            attrs["otel_threads.previous_turn_id"] = format(1000 + 10 * (t - 8), "016x")
        else:
            attrs["gen_ai.conversation.id"] = f"thread-{thread_no}"
        spans += [
            span(trace, turn, "turn", T0 + t * 10**6, attrs),
            span(trace, turn + 1, "step", T0 + t * 10**6 + 10, {}, parent=turn),
        ]
    rnd.shuffle(spans)
    sizes = []
    for i in range(0, len(spans), 9):
        store.insert(spans[i : i + 9])
        queued = store.rows("SELECT count(DISTINCT trace_id) FROM derive_queue")[0][0]
        taken = store.deriver.refresh(7, 3000)
        sizes.append(taken)
        assert 1 <= taken <= min(WIDEN * 7, queued)
        store.assert_kept_equals_scratch() if store.deriver.pending() == 0 else None
    while store.deriver.refresh(7, 3000):
        pass
    assert max(sizes) > 1 and store.deriver.pending() == 0
    store.assert_kept_equals_scratch()
    assert store.rows("SELECT thread_id, turn_count FROM threads ORDER BY 1") == [
        (f"thread-{n}", 5) for n in range(8)
    ]


def test_a_refresh_takes_the_queued_traces_of_its_threads_along(tmp_path):
    """A thread is derived once for all of its waiting turns: a batch of one trace takes
    the other queued traces of its thread (not those of other threads), and the rows
    match a derivation from scratch."""
    store = Store(tmp_path / "s.duckdb")
    for t in range(18):  # 3 threads of 6 turns, each turn its own commit
        trace = 3000 + t
        store.insert(
            [
                span(
                    trace,
                    10 * trace,
                    "turn",
                    T0 + t * 10**6,
                    {
                        "gen_ai.conversation.id": f"thread-{t % 3}",
                        "otel_threads.is_turn": True,
                    },
                ),
            ]
        )
    assert store.rows("SELECT count(*) FROM derive_queue WHERE thread_id = 'thread-0'") == [(6,)]
    assert WIDEN >= 6
    assert store.deriver.refresh(1) == 6  # the oldest trace, and its thread's 5 others
    assert store.rows("SELECT thread_id, turn_count FROM threads") == [("thread-0", 6)]
    assert store.deriver.refresh(1) == 6 and store.deriver.refresh(1) == 6
    assert store.deriver.pending() == 0
    store.assert_kept_equals_scratch()


def test_a_new_turn_rewrites_only_the_rows_it_changes(tmp_path):
    """A thread is re-derived whole, but only rows that differ are written: the earlier
    turns of a long thread keep their rows (same rowid), the thread's row is replaced,
    and the rows match a derivation from scratch."""
    store = Store(tmp_path / "s.duckdb")

    def add(t: int) -> None:
        trace = 5000 + t
        attrs = {"gen_ai.conversation.id": "long", "otel_threads.is_turn": True}
        store.insert([span(trace, 10 * trace, "turn", T0 + t * 10**6, attrs)])

    for t in range(40):
        add(t)
    store.derive_all()
    before = dict(store.rows("SELECT turn_id, rowid FROM turns_mat"))
    thread_row = store.rows("SELECT rowid FROM threads_mat")
    add(40)
    store.derive_all()
    after = dict(store.rows("SELECT turn_id, rowid FROM turns_mat"))
    assert len(after) == 41 and {t: after[t] for t in before} == before
    assert store.rows("SELECT rowid FROM threads_mat") != thread_row
    assert store.rows("SELECT turn_count FROM threads") == [(41,)]
    store.assert_kept_equals_scratch()


def llm_turn(i: int, thread_id: str, size: int) -> tuple[list[dict], str, str]:
    """Turn ``i`` of ``thread_id`` (its own trace): a turn span and an LLM call span whose
    input is one user message of ``size`` bytes and whose output one of ``size`` bytes."""
    rnd = random.Random(i)
    question = f"Q{i} " + "".join(rnd.choices("abcdefgh ", k=size))
    answer = f"A{i} " + "".join(rnd.choices("ijklmnop ", k=size))
    trace, turn = 500 + i, 16 * (500 + i)
    start = T0 + i * 60 * 10**9
    return (
        [
            span(
                trace,
                turn,
                "handle_message",
                start,
                {"gen_ai.conversation.id": thread_id, "otel_threads.is_turn": True},
            ),
            span(
                trace,
                turn + 1,
                "chat gpt-4o-mini",
                start + 10**6,
                {
                    "gen_ai.conversation.id": thread_id,
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": answer}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                },
                parent=turn,
            ),
        ],
        question,
        answer,
    )


def test_huge_llm_calls_derive_in_chunks_with_whole_texts_in_the_detail(tmp_path, monkeypatch):
    monkeypatch.setattr(shared_views, "PARSE_CHUNK_BYTES", 1 << 20)  # a chunk per call, or two
    store = Store(tmp_path / "s.duckdb")
    texts = []
    for i in range(4):  # 4 calls of 1.5 MB in and 1.5 MB out
        spans, question, answer = llm_turn(i, "big", 3 << 19)
        texts += [("user", question), ("assistant", answer)]
        store.insert(spans)
        if i == 1:
            store.derive_all()  # the first two derived before the others arrive
    chunks = []
    shared = store.deriver._shared_views

    def watch():
        shared()
        chunks.append(store.rows("SELECT count(*) FROM temp.messages")[0][0])

    store.deriver._shared_views = watch
    store.derive_all()
    # the two new turns' messages, a chunk at a time: the first two turns' transcript rows
    # stay as written, their texts not parsed again
    assert chunks == [4]
    detail = query_thread(store.con, "big")
    assert [(m.role, m.content) for m in detail.transcript] == texts  # whole
    assert detail.thread.turn_count == 4 and detail.thread.llm_call_count == 4
    assert store.rows("SELECT content FROM messages WHERE role = 'assistant' ORDER BY span_id") == [
        (t,) for r, t in texts if r == "assistant"
    ]
    store.assert_kept_equals_scratch()


def test_a_refresh_parses_only_its_own_traces(tmp_path):
    """A new turn of a thread parses that turn's calls, not the thread's."""
    store = Store(tmp_path / "s.duckdb")
    parsed = []
    shared = store.deriver._shared_views

    def watch():
        shared()
        parsed.append(store.rows("SELECT count(DISTINCT trace_id) FROM temp.llm_calls")[0][0])

    store.deriver._shared_views = watch
    for i in range(3):
        store.insert(llm_turn(i, "chat", 200)[0])
        store.derive_all()
    assert parsed == [1, 1, 1]
    assert store.rows("SELECT turn_count, llm_call_count FROM threads") == [(3, 3)]
    store.assert_kept_equals_scratch()


def test_a_call_follows_its_trace_to_the_thread_it_joins_later(tmp_path):
    """A linked turn's call arrives before the turn it names (no thread yet); when that
    turn arrives, the trace joins its thread and is parsed with it: its message keys
    carry the thread, the kept rows are the views', and the thread counts both calls."""
    store = Store(tmp_path / "s.duckdb")
    first, _, _ = llm_turn(0, "A", 50)
    second, _, _ = llm_turn(1, "A", 50)
    for sp in second:  # no thread id: it names the first turn instead
        sp["attributes"] = [a for a in sp["attributes"] if a["key"] != "gen_ai.conversation.id"]
    second[0]["attributes"].append(_kv("otel_threads.previous_turn_id", first[0]["spanId"]))
    store.insert(second)
    store.derive_all()
    assert store.rows("SELECT count(*) FROM threads") == [(0,)]  # no thread known yet
    store.insert(first)
    store.derive_all()
    assert store.rows("SELECT DISTINCT thread_id FROM message_keys_mat") == [("A",)]
    assert store.rows("SELECT turn_count, llm_call_count FROM threads") == [(2, 2)]
    store.assert_kept_equals_scratch()


def test_a_thread_too_large_for_the_memory_limit_is_set_aside_and_the_others_derive(
    tmp_path: Path,
) -> None:
    """DuckDB's --memory-limit bounds derivation: a thread whose texts need more is set
    aside (derive_errors says so), never the queue stuck behind it."""
    with capture() as cap:
        for i in range(4):
            with (
                thread("huge"),
                cap.tracer.start_as_current_span(f"turn-{i}"),
                cap.tracer.start_as_current_span("chat gpt-4o") as span,
            ):
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute(
                    "gen_ai.input.messages",
                    json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": "q" * (4 << 20)}]}]
                    ),
                )
                span.set_attribute(
                    "gen_ai.output.messages",
                    json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": "a" * (4 << 20)}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                )
        with thread("small"), cap.tracer.start_as_current_span("hello"):
            pass
        spans = cap.spans()
    # stored first (a commit each, queued), then derived under the limit: a commit racing
    # a derivation for the same small memory is the writer's test (test_store_faults)
    path = str(tmp_path / "x.duckdb")
    plain = connect(path)
    seq = 1
    for span in spans:
        plain.execute("BEGIN TRANSACTION")
        table = decode_traces_protobuf(encode_spans([span]).SerializeToString()).table
        seq += insert_batch(plain, "spans", table, seq, 0, True)
        plain.execute("COMMIT")
    plain.close()
    store = FileStore(path, on_open=lambda con: con.execute("SET memory_limit = '96MB'"))
    store.open()
    try:
        assert store.sync(600)
        with store.cursor() as con:
            assert con.execute("SELECT thread_id FROM threads").fetchall() == [("small",)]
            errors = con.execute("SELECT DISTINCT thread_id, error FROM derive_errors").fetchall()
            assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
    finally:
        store.close()
    assert errors and all(t == "huge" and "Out of Memory" in e for t, e in errors), errors


def test_the_oldest_queued_traces_are_found_among_the_oldest_rows_or_in_the_whole_queue(
    tmp_path,
):
    """A refresh's oldest traces are looked for among the queue's oldest rows: they are
    those a grouping of the whole queue gives, whether those rows hold enough traces (one
    row each) or not (a trace queued by many commits fills them), after the front of the
    queue was taken off and with rows taken from its middle."""
    store = Store(tmp_path / "s.duckdb")
    con = store.con
    con.execute("DELETE FROM derive_queue")
    rows = [f"t{i:03d}" for i in range(50)] + ["many"] * 30 + [f"u{i:03d}" for i in range(50)]
    rows += [f"t{i:03d}" for i in range(0, 50, 7)]  # queued again later: still as old
    for trace in rows:
        con.execute("INSERT INTO derive_queue (trace_id) VALUES (?)", [trace])

    def whole(limit: int) -> list[str]:
        return [
            r[0]
            for r in con.execute(
                "SELECT trace_id FROM derive_queue GROUP BY trace_id ORDER BY min(rowid) LIMIT ?",
                [limit],
            ).fetchall()
        ]

    for limit in (1, 5, 60, 200):
        assert store.deriver._oldest(limit) == whole(limit)
    con.execute("DELETE FROM derive_queue WHERE trace_id < 't049' OR trace_id = 'u007'")
    for limit in (1, 2, 5, 40):  # 'many' fills the first rows: fewer traces than asked
        assert store.deriver._oldest(limit) == whole(limit)
    con.execute("DELETE FROM derive_queue")
    assert store.deriver._oldest(5) == []


def test_the_queue_counts_the_bytes_of_content_a_refresh_reads(tmp_path):
    """What the queue counts for a trace (per commit, at ingest) is what a refresh reads
    of it when the queue did not count it (a rebuild's traces): one measure bounds both."""
    store = Store(tmp_path / "s.duckdb")
    store.insert([span(1, 10, "turn", T0, {"a": "x" * 300}), span(2, 20, "t", T0, {"b": 1})])
    store.insert([span(1, 11, "step", T0 + 5, {"c": "\u00e9\u4e2d" * 40}, parent=10)])
    record = {  # (a log record of trace 2 and one of a trace with no spans, non-ASCII)
        "timeUnixNano": str(T0),
        "body": {"stringValue": "r\u00e9ponse " * 20},
        "attributes": [_kv("event.name", "gen_ai.choice")],
        "traceId": format(2, "032x"),
        "spanId": format(20, "016x"),
    }
    orphan = {**record, "traceId": format(3, "032x"), "spanId": format(30, "016x")}
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record, orphan]}]}]}
    logs = decode_logs_json(json.dumps(body).encode()).table
    store.con.execute("BEGIN TRANSACTION")
    store.seq += insert_batch(store.con, "logs", logs, store.seq, 0, True)
    store.con.execute("COMMIT")
    queued = dict(store.rows("SELECT trace_id, sum(bytes) FROM derive_queue GROUP BY trace_id"))
    stored = store.deriver._content_bytes(store.deriver.db)
    assert queued == stored and queued[format(1, "032x")] > 500
    assert len(queued) == 3


def test_a_long_thread_that_ends_and_reopens_in_bounded_shuffled_batches(tmp_path):
    """Two 30-turn threads with end marks (on a child span, on a turn span as the
    string "true", on a late zero-length marker span), one ending with its last turn,
    the other reopened after: their spans arrive shuffled, refreshes take small batches,
    and the rows are those of a derivation from scratch."""
    store = Store(tmp_path / "s.duckdb")
    rnd = random.Random(16)
    end = "otel_threads.thread_ended"
    spans = []
    for n, thread_id in enumerate(("ends", "reopens")):
        for i in range(30):
            trace, turn, at = 5000 + 100 * n + i, 10 * (5000 + 100 * n + i), T0 + i * 10**9
            root = {"gen_ai.conversation.id": thread_id, "otel_threads.is_turn": True}
            child: dict = {}
            if i == 12:
                root[end] = "true"
            if i == 5:
                child[end] = True
            spans += [
                span(trace, turn, "turn", at, root),
                span(trace, turn + 1, "step", at + 10, child, parent=turn),
            ]
            if i == 29 - 3 * n:  # "ends": its last turn; "reopens": turn 26
                marker = span(trace, turn + 2, "otel_threads.thread_end", at + 5000, {end: True})
                spans.append(dict(marker, parentSpanId=format(turn, "016x")))
    rnd.shuffle(spans)
    for i in range(0, len(spans), 7):
        store.insert(spans[i : i + 7])
        store.deriver.refresh(5, 3000)
    while store.deriver.refresh(5, 3000):
        pass
    store.assert_kept_equals_scratch()
    t0 = dt.datetime.fromtimestamp(T0 / 1e9, dt.UTC).replace(tzinfo=None)
    assert store.rows(
        "SELECT thread_id, turn_count, ended, ended_at, reopened_at FROM threads ORDER BY 1"
    ) == [
        ("ends", 30, True, t0 + dt.timedelta(seconds=29, microseconds=6), None),
        ("reopens", 30, False, None, t0 + dt.timedelta(seconds=27)),
    ]
