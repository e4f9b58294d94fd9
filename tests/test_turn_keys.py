"""Turn keys (otel_threads.store.turn_keys): the (thread, turn) pairs of turns_mat, kept in
generations indexed by turn id, which a refresh looks its touched turns up in."""

from __future__ import annotations

import datetime as dt

import duckdb
from test_derive_bounds import T0, Store, span
from test_incremental_derive import chat_turn
from test_trace_numbers import store_at_migration

from otel_threads.store import schema, turn_keys
from otel_threads.store.retention import prune
from otel_threads.store.turn_keys import TURN_KEYS
from otel_threads.store.writer import Writer

DEADLINE_S = 60


def sizes(con) -> list[int]:
    """The pairs each generation of turn_keys holds, oldest first."""
    return [
        con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TURN_KEYS.tables(con)
    ]


def handed(trace: int, turn: int, minute: int) -> list[dict]:
    """A span of its own trace that names turn ``turn`` of chat_turn (and thread 't')."""
    return [
        span(
            trace,
            trace * 16,
            "background_job",
            T0 + (turn * 60 + minute) * 10**9,
            {
                "otel_threads.turn_id": format(16 * (7000 + turn), "016x"),
                "gen_ai.conversation.id": "t",
            },
        )
    ]


def test_new_turns_go_to_the_newest_generation_and_old_ones_are_found_in_theirs(
    tmp_path, monkeypatch
):
    """A refresh adds the pairs of its new turns to the newest generation; a turn kept in
    an older one is still found there (its span in a trace of its own joins its other
    traces, as a derivation from scratch counts it) and is not added again."""
    monkeypatch.setattr(turn_keys, "GENERATION", 2)
    store = Store(tmp_path / "s.duckdb")
    for i in range(3):
        store.insert(chat_turn(i, "t", [("user", f"q{i}")], f"a{i}"))
    store.derive_all()
    assert sizes(store.con) == [3]
    assert turn_keys.roll(store.con)
    assert not turn_keys.roll(store.con)  # (the new one is empty)
    assert TURN_KEYS.tables(store.con) == ["turn_keys_0", "turn_keys_1"]
    store.insert(chat_turn(3, "t", [("user", "q3")], "a3"))
    store.insert(handed(9001, 1, 5))
    store.derive_all()
    assert sizes(store.con) == [3, 1]
    assert store.rows(
        "SELECT turn_index, span_count FROM turns WHERE thread_id = 't' ORDER BY turn_index"
    ) == [(1, 2), (2, 3), (3, 2), (4, 2)]
    store.assert_kept_equals_scratch()
    # retention takes the pruned thread's pairs out of every generation
    store.insert(chat_turn(9, "new", [("user", "q9")], "a9", at=600))
    store.derive_all()
    before = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=(T0 + 300 * 60 * 10**9) // 1000)
    assert prune(store.con, before).threads == 1
    assert store.rows("SELECT thread_id, count(*) FROM turn_keys GROUP BY ALL") == [("new", 1)]


def test_the_store_begins_the_next_generation_at_a_checkpoint(tmp_path, monkeypatch):
    """The collector's store rolls the generations at its checkpoints, while no refresh
    runs: the newest full, the next begins, and the refreshes after add to it."""
    monkeypatch.setattr(turn_keys, "GENERATION", 2)
    writer = Writer(str(tmp_path / "w.duckdb")).start()
    try:
        store = writer.store

        def write(spans: list[dict]) -> None:
            from test_derive_bounds import spans_table

            writer.write("spans", spans_table(spans), timeout=DEADLINE_S)
            assert store.sync(DEADLINE_S)

        for i in range(2):
            write(chat_turn(i, "t", [("user", f"q{i}")], f"a{i}"))
        assert store.checkpoint()
        with store.cursor() as cur:
            assert sizes(cur) == [2, 0]
        write(chat_turn(2, "t", [("user", "q2")], "a2"))
        assert store.checkpoint()
        with store.cursor() as cur:
            assert sizes(cur) == [2, 1]
    finally:
        writer.close()


def test_migration_keeps_a_store_s_turns_as_turn_keys(tmp_path, monkeypatch):
    """A store at migration 0024 opened by this version: its turns' pairs in turn_keys_0
    (indexed by turn id), and turns_mat no longer indexed by turn id."""
    path = str(tmp_path / "old.duckdb")
    con = store_at_migration(path, 24, monkeypatch)
    con.execute(
        "INSERT INTO turns_mat (thread_id, turn_id) VALUES ('a', '1'), ('a', '2'), ('b', '3')"
    )
    con.close()
    con = duckdb.connect(path)
    try:
        assert 25 in schema.migrate(con)
        assert con.execute("SELECT thread_id, turn_id FROM turn_keys ORDER BY ALL").fetchall() == [
            ("a", "1"),
            ("a", "2"),
            ("b", "3"),
        ]
        indexes = con.execute(
            "SELECT table_name, expressions FROM duckdb_indexes() "
            "WHERE table_name IN ('turns_mat', 'turn_keys_0') ORDER BY ALL"
        ).fetchall()
        assert indexes == [("turn_keys_0", "[turn_id]"), ("turns_mat", "[thread_id]")]
    finally:
        con.close()


def test_a_rebuild_of_turns_begins_the_turn_keys_again(tmp_path, monkeypatch):
    """Derived tables derived anew (an upgrade) take their turn keys with them: every
    generation dropped, and the rebuild's refreshes add each turn once, so none of them
    looks for spans derived before that are not there."""
    monkeypatch.setattr(turn_keys, "GENERATION", 2)
    store = Store(tmp_path / "s.duckdb")
    for i in range(3):
        store.insert(chat_turn(i, "t", [("user", f"q{i}")], f"a{i}"))
    store.derive_all()
    assert turn_keys.roll(store.con)
    store.con.execute("UPDATE otel_threads_derived SET version = 'before'")
    looked_up = []
    known = store.deriver._known_turns

    def watch(pairs, known=known):
        found = known(pairs)
        looked_up.extend(found)
        return found

    store.deriver._known_turns = watch
    store.deriver.rebuild(store.deriver.stale())
    assert TURN_KEYS.tables(store.con) == ["turn_keys_0"]
    assert sizes(store.con) == [0]
    store.derive_all()
    assert looked_up == []
    assert sizes(store.con) == [3]
    store.assert_kept_equals_scratch()
