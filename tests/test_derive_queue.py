"""A refresh reads its batch's queue rows once and then names them by rowid
(otel_threads.store.queue): rows that moved, and rows queued after the batch was read,
still give the rows of a derivation from scratch, and no trace is taken off the queue
for another."""

from __future__ import annotations

from test_derive_bounds import T0, Store, span
from test_incremental_derive import chat_turn

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
