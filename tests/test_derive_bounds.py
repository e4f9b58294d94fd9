"""A long chain of linked turns does not hold other threads' derivation: a refresh
derives the plain traces first, in a transaction of their own, then the traces whose
resolution walks ``previous_turn_id`` links (bench/derive_chain.py measures a 30,000-turn
loop)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from otel_threads import thread
from otel_threads.decode import decode_traces_protobuf
from otel_threads.derive import Deriver
from otel_threads.testing import capture
from otel_threads.writer import Writer

CHAIN = 200


def _table(spans: list) -> object:
    return decode_traces_protobuf(encode_spans(spans).SerializeToString()).table


def test_plain_traces_derive_before_a_chain_and_apart_from_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    groups: list[list[str]] = []
    original = Deriver._derive

    def recording(self: Deriver, traces: list[str]) -> None:
        groups.append(list(traces))
        original(self, traces)

    monkeypatch.setattr(Deriver, "_derive", recording)
    with capture(first_span_id=1) as cap:
        for k in range(CHAIN):  # turn k (span id k + 1) names turn k - 1, the first names
            # "chain-last" (span id CHAIN + 2), which arrives later and closes the loop
            with thread(previous_turn_id=format(k if k else CHAIN + 2, "016x")), \
                    cap.tracer.start_as_current_span(f"chain-{k}"):
                pass
        with thread("other"), cap.tracer.start_as_current_span("other-1"):
            pass
        early = cap.spans()
        cap.exporter.clear()
        # one commit: the turn that closes the loop, and a plain turn of another thread
        with thread(previous_turn_id=format(CHAIN, "016x")), \
                cap.tracer.start_as_current_span("chain-last"):
            pass
        with thread("other"), cap.tracer.start_as_current_span("other-2"):
            pass
        late = cap.spans()
    chain_trace = format(late[0].context.trace_id, "032x")
    other_trace = format(late[1].context.trace_id, "032x")

    writer = Writer(str(tmp_path / "x.duckdb")).start()
    try:
        writer.write("spans", _table(early))
        assert writer.sync(120)
        groups.clear()
        writer.write("spans", _table(late))
        assert writer.sync(120)
        with writer.cursor() as con:
            assert con.execute("SELECT turn_count FROM threads WHERE thread_id = 'other'"
                               ).fetchall() == [(2,)]
            assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
            # derived too: a loop without a thread id resolves to no thread
            chained = con.execute("SELECT count(*), count(thread_id) FROM span_threads "
                                  "WHERE trace_id = ?", [chain_trace]).fetchall()
    finally:
        writer.close()
    first = next(g for g in groups if other_trace in g or chain_trace in g)
    assert other_trace in first and chain_trace not in first
    assert any(chain_trace in g for g in groups[groups.index(first) + 1:])
    assert chained == [(1, 0)]


def test_a_thread_too_large_for_the_memory_limit_is_set_aside_and_the_others_derive(
        tmp_path: Path) -> None:
    """DuckDB's --memory-limit bounds derivation: a thread whose texts need more is set
    aside (derive_errors says so), never the queue stuck behind it."""
    import json

    with capture() as cap:
        for i in range(4):
            with thread("huge"), cap.tracer.start_as_current_span(f"turn-{i}"), \
                    cap.tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.input.messages", json.dumps([{
                    "role": "user", "parts": [{"type": "text", "content": "q" * (4 << 20)}]}]))
                span.set_attribute("gen_ai.output.messages", json.dumps([{
                    "role": "assistant", "parts": [{"type": "text", "content": "a" * (4 << 20)}],
                    "finish_reason": "stop"}]))
        with thread("small"), cap.tracer.start_as_current_span("hello"):
            pass
        spans = cap.spans()
    writer = Writer(str(tmp_path / "x.duckdb"),
                    on_open=lambda con: con.execute("SET memory_limit = '96MB'")).start()
    try:
        for span in spans:
            writer.write("spans", _table([span]))
        assert writer.sync(600)
        with writer.cursor() as con:
            assert con.execute("SELECT thread_id FROM threads").fetchall() == [("small",)]
            errors = con.execute("SELECT DISTINCT thread_id, error FROM derive_errors"
                                 ).fetchall()
            assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
    finally:
        writer.close()
    assert errors and all(t == "huge" and "Out of Memory" in e for t, e in errors), errors
