"""A refresh reads its batch's queue rows once and then names them by rowid
(otel_threads.store.queue): rows that moved, and rows queued after the batch was read,
still give the rows of a derivation from scratch, and no trace is taken off the queue
for another."""

from __future__ import annotations

import pytest
from test_derive_bounds import T0, Store, span
from test_incremental_derive import chat_turn

from otel_threads.store import queue
from otel_threads.store.scoped import _STRETCH


def test_rowids_that_name_another_traces_rows_take_none_of_them_off(tmp_path):
    """As if a checkpoint had compacted the queue between reading the batch and deriving
    it: the rowids read name rows of traces outside the batch. Those stay queued, and the
    batch's own rows are found by trace id."""
    store = Store(tmp_path / "s.duckdb")
    for i in range(3):
        store.insert(chat_turn(i, f"thread-{i}", [("user", f"q{i}")], f"a{i}"))
    deriver = store.deriver
    read = deriver._batch_rows

    def moved(traces):
        rows = read(traces)
        others = store.rows(
            "SELECT rowid FROM derive_queue WHERE trace_id NOT IN (SELECT unnest(?::VARCHAR[]))",
            traces,
        )
        deriver._known.update({t: [r[0] for r in others] for t in traces})
        return rows

    deriver._batch_rows = moved
    refreshes = 0
    while deriver.refresh(limit=1):
        refreshes += 1
    assert refreshes == 3
    assert store.rows("SELECT thread_id, turn_count FROM threads ORDER BY 1") == [
        (f"thread-{i}", 1) for i in range(3)
    ]
    store.assert_kept_equals_scratch()


def test_a_commit_after_the_batch_was_read_stays_queued_and_derives(tmp_path):
    """The rest of a trace committed after the refresh read its batch: the new row is not
    taken off with the batch, so the trace is derived again, whole."""
    store = Store(tmp_path / "s.duckdb")
    root, call = chat_turn(0, "a", [("user", "q0")], "a0")
    store.insert([call])
    deriver = store.deriver
    read = deriver._batch_rows
    arrived = []

    def then_commit(traces):
        rows = read(traces)
        if traces and not arrived:
            arrived.append(True)
            store.insert([root])
        return rows

    deriver._batch_rows = then_commit
    store.derive_all()
    assert arrived
    assert store.rows("SELECT count(*) FROM derive_queue") == [(0,)]
    assert store.rows("SELECT turn_index, span_count FROM turns") == [(1, 2)]
    store.assert_kept_equals_scratch()


def test_traces_derived_before_are_read_whole_near_or_far(tmp_path):
    """A late span for a trace derived before: the trace is read whole, from the short
    stretch of the table its spans lie in, or through the index when they lie far apart
    (another thread's many spans between); the rows are those of a derivation from
    scratch."""
    store = Store(tmp_path / "s.duckdb")
    near, far = 7000, 7001
    store.insert(chat_turn(0, "near", [("user", "q0")], "a0"))
    store.insert(chat_turn(1, "far", [("user", "q1")], "a1"))
    store.derive_all()
    read = []
    whole = store.deriver._read_whole

    def watch(traces):
        whole(traces)
        read.append(store.rows("SELECT trace_id, count(*) FROM temp.spans_raw GROUP BY 1"))

    store.deriver._read_whole = watch
    late = [span(t, 16 * t + 9, "late step", T0 + 10**6, {}, parent=16 * t) for t in (near, far)]
    store.insert([late[0]])
    store.derive_all()
    others = range(9000, 9000 + _STRETCH * 3)
    store.insert([span(t, 16 * t, "other", T0, {"gen_ai.conversation.id": "o"}) for t in others])
    store.derive_all()
    store.insert([late[1]])
    store.derive_all()
    assert read == [[(format(near, "032x"), 3)], [(format(far, "032x"), 3)]]
    (near_stretch,), (far_stretch,) = store.rows(
        "SELECT max(ingest_seq) - min(ingest_seq) FROM spans_raw WHERE trace_id IN (?, ?) "
        "GROUP BY trace_id ORDER BY trace_id",
        format(near, "032x"),
        format(far, "032x"),
    )
    assert near_stretch < _STRETCH * 3 <= far_stretch  # (read from it, and not)
    assert store.rows(
        "SELECT thread_id, span_count FROM turns WHERE thread_id <> 'o' ORDER BY 1"
    ) == [("far", 3), ("near", 3)]
    store.assert_kept_equals_scratch()


def _turn(trace: int, thread_id: str) -> dict:
    attrs = {"gen_ai.conversation.id": thread_id, "otel_threads.is_turn": True}
    return span(trace, 16 * trace, "turn", T0 + trace * 10**6, attrs)


@pytest.mark.parametrize("least", [0, 1 << 20])
def test_a_batch_takes_along_the_queued_turns_of_its_threads_near_it_only(
    tmp_path, monkeypatch, least
):
    """A batch takes along the queued turns of its threads whose spans came within
    WIDEN_STRETCH times its own stretch of spans_raw (or WIDEN_MIN_ROWS rows): one that
    came far later (a thread that comes back after much other traffic) waits for a batch
    of its own, so no refresh reads the whole table for it. With the bound far away, it
    comes along. Either way the rows are those of a derivation from scratch."""
    monkeypatch.setattr(queue, "WIDEN_STRETCH", 2)
    monkeypatch.setattr(queue, "WIDEN_MIN_ROWS", least)
    store = Store(tmp_path / "s.duckdb")
    store.insert([_turn(1, "back")])
    store.insert([_turn(2, "back")])  # near: within twice the batch's stretch of one row
    for trace in range(10, 20):  # other traffic, one commit each
        store.insert([_turn(trace, f"other-{trace}")])
    store.insert([_turn(3, "back")])  # far
    seqs = dict(store.rows("SELECT trace_id, last_seq FROM derive_queue"))
    first = seqs[format(1, "032x")]
    assert seqs[format(2, "032x")] <= first + 2 * 1 < seqs[format(3, "032x")]
    taken = store.deriver.refresh(1)
    assert taken == (2 if least == 0 else 3)
    assert store.rows("SELECT turn_count FROM threads WHERE thread_id = 'back'") == [(taken,)]
    store.derive_all()
    assert store.rows("SELECT turn_count FROM threads WHERE thread_id = 'back'") == [(3,)]
    store.assert_kept_equals_scratch()


def test_a_rebuild_queues_the_traces_as_they_came_and_reads_their_stretch(tmp_path):
    """A rebuild (derived tables made by other SQL) queues every trace in the order its
    first span came, threads interleaved as they were, not thread by thread: a batch's
    spans lie in one stretch of spans_raw. The sizes a batch is bounded by are read from
    that stretch and equal the stored sizes; the rows are those of a derivation from
    scratch."""
    store = Store(tmp_path / "s.duckdb")
    order = []
    for i in range(12):  # 3 threads, 4 turns each, interleaved
        store.insert(chat_turn(i, f"t{2 - i % 3}", [("user", f"q{i}")], f"a{i}"))
        order.append(format(7000 + i, "032x"))
    store.derive_all()
    store.rows("UPDATE otel_threads_derived SET version = 'other' WHERE name LIKE '%_mat'")
    deriver = store.deriver
    deriver.rebuild(deriver.stale())
    queued = store.rows("SELECT trace_id, thread_id, first_seq FROM derive_queue ORDER BY rowid")
    assert [r[0] for r in queued] == order
    assert [r[2] for r in queued] == sorted(r[2] for r in queued)
    assert [r[1] for r in queued][:3] == ["t2", "t1", "t0"]  # (not thread by thread)
    sizes = []
    counted = deriver._content_bytes

    def watch(schema, where="true", spans_where="true"):
        got = counted(schema, where, spans_where)
        if schema == deriver.db:  # (not a refresh's own scope: its parse chunks)
            sizes.append((spans_where, got))
        return got

    deriver._content_bytes = watch
    store.derive_all()
    stored = counted(deriver.db)
    assert sizes and all(got == {t: stored[t] for t in got} for _, got in sizes)
    assert all(where.startswith("ingest_seq BETWEEN") for where, _ in sizes)
    store.assert_kept_equals_scratch()
