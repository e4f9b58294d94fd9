"""Trace numbers (otel_threads.store.trace_numbers): each trace is numbered when it is
first stored, the tables of rows per trace carry the number and are indexed by it, so a
commit of new traces touches one edge of their indexes, not all of them."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pyarrow as pa
import pytest
from test_clickhouse_worker import file_store, fixture_tables
from test_derive_bounds import T0, Store, span, spans_table
from test_incremental_derive import SYSTEM, chat_turn

from otel_threads.store import insert, schema, scoped, trace_numbers
from otel_threads.store.derive import Deriver
from otel_threads.store.memory_budget import INDEX_MEMORY_SQL
from otel_threads.store.retention import prune
from otel_threads.store.schema import connect
from otel_threads.store.sqlfiles import DERIVED, LEFT_OUT, SqlFiles, sql_files
from otel_threads.store.trace_numbers import SeenTraces, trace_hashes
from otel_threads.store.writer import Writer

DEADLINE_S = 60.0

#: The tables of rows per trace: each row carries its trace's number.
NUMBERED = ("spans_raw", "logs", *(t for t, _, key in DERIVED if key == "trace_id"))


def numbers(store: Store) -> dict[str, int]:
    return dict(store.rows("SELECT trace_id, trace_n FROM trace_numbers"))


def misnumbered(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Per numbered table, its rows whose number is not their trace's."""
    return {
        table: con.execute(
            f"SELECT count(*) FROM {table} t LEFT JOIN trace_numbers k USING (trace_id) "
            "WHERE t.trace_id IS NOT NULL AND t.trace_n IS DISTINCT FROM k.trace_n"
        ).fetchall()[0][0]
        for table in NUMBERED
    }


def turn(i: int) -> list[dict]:
    return chat_turn(i, "t", [("system", SYSTEM), ("user", f"q{i}")], f"a{i}")


def test_a_trace_is_numbered_when_first_stored_and_keeps_its_number(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    for i in range(4):
        store.insert(turn(i))
    first = numbers(store)
    assert len(first) == 4
    # in the order the traces arrived
    assert [t for t, _ in sorted(first.items(), key=lambda p: p[1])] == sorted(first)
    spans = store.rows("SELECT count(*) FROM spans_raw")[0][0]
    store.insert(turn(2))  # a redelivery: nothing new, no number
    trace = format(7000, "032x")
    late = span(7000, 999, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7000)
    store.insert([late])  # a late span of the first trace: its number
    store.insert(turn(9))
    now = numbers(store)
    assert {t: n for t, n in now.items() if t in first} == first
    assert now[format(7009, "032x")] > max(first.values())
    assert store.rows("SELECT count(*) FROM spans_raw")[0][0] == spans + 1 + 2
    assert store.rows("SELECT trace_n FROM spans_raw WHERE span_id = ?", format(999, "016x")) == [
        (first[trace],)
    ]
    assert misnumbered(store.con) == dict.fromkeys(NUMBERED, 0)


def test_derived_rows_carry_their_traces_numbers_through_late_and_linked_data(tmp_path):
    """Rows derived again (a late span, a turn answering an earlier one, a turn out of
    order) carry their trace's number in every table, and the rows are a derivation's
    from scratch."""
    store = Store(tmp_path / "s.duckdb")
    for i in (0, 1, 3):
        store.insert(turn(i))
    store.derive_all()
    store.insert(turn(2))  # out of order
    store.insert(chat_turn(4, "t", [("user", "again")], "a4", previous=1))  # a fork
    late = span(7001, 999, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7001)
    store.insert([late])
    store.derive_all()
    counts = {
        t: store.rows(f"SELECT count(*) FROM {t}")[0][0]
        for t in ("span_threads_mat", "message_keys_mat", "thread_attributes_mat")
    }
    assert all(counts.values()), counts
    assert misnumbered(store.con) == dict.fromkeys(NUMBERED, 0)
    store.assert_kept_equals_scratch()


def store_at_migration(path: str, version: int, monkeypatch) -> duckdb.DuckDBPyConnection:
    """A new store at ``path`` made by the migrations up to ``version`` alone (a store of an
    older otel-threads: this version's migrate applies the others when it opens it)."""
    known = schema._migrations()
    with monkeypatch.context() as patched:
        patched.setattr(schema, "_migrations", lambda: known[:version])
        con = duckdb.connect(path)
        schema.migrate(con)
    return con


def test_migration_numbers_a_store_from_before_in_arrival_order(tmp_path, monkeypatch):
    """A store at migration 0017 (rows per trace indexed by trace id) opened by this
    version: its traces numbered in the order they arrived, every row numbered, and the
    indexes by trace id replaced by indexes by number."""
    path = str(tmp_path / "old.duckdb")
    con = store_at_migration(path, 17, monkeypatch)
    con.execute(
        "INSERT INTO spans_raw (trace_id, span_id, start_time_unix_nano, ingest_seq, "
        "received_at) VALUES ('b', '1', 0, 5, now()), ('a', '2', 0, 7, now()), "
        "('b', '3', 0, 9, now())"
    )
    con.execute(
        "INSERT INTO logs (record_id, trace_id, ingest_seq, received_at) "
        "VALUES ('r1', 'c', 1, now()), ('r2', NULL, 2, now())"
    )
    con.execute("INSERT INTO span_threads_mat (trace_id, span_id) VALUES ('b', '1'), ('a', '2')")
    con.close()
    con = duckdb.connect(path)
    assert {18, 19} <= set(schema.migrate(con))
    assert con.execute("SELECT trace_id FROM trace_numbers ORDER BY trace_n").fetchall() == [
        ("c",),
        ("b",),
        ("a",),
    ]
    assert misnumbered(con) == dict.fromkeys(NUMBERED, 0)
    assert con.execute("SELECT count(*) FROM logs WHERE trace_n IS NULL").fetchall() == [(1,)]
    indexed = con.execute(
        "SELECT table_name, expressions FROM duckdb_indexes() WHERE table_name IN "
        f"({', '.join(repr(t) for t in NUMBERED)})"
    ).fetchall()
    assert {t for t, e in indexed if e == "[trace_n]"} == set(NUMBERED)
    assert not [t for t, e in indexed if e == "[trace_id]"]
    # and numbering goes on from there
    assert con.execute("SELECT nextval('trace_n_seq')").fetchall() == [(4,)]
    con.close()


#: Stored traces of the store below; the new ones of one commit.
SEEDED, NEW = 200_000, 2_000


def _index_memory_of_new_rows(path: str, by_trace_id: bool) -> float:
    """MiB of index DuckDB holds after ``NEW`` new traces' spans go into a store of
    ``SEEDED`` (spans_raw indexed by number, and also by trace id when ``by_trace_id``)."""
    con = duckdb.connect(path)
    schema.migrate(con)
    con.execute(
        "INSERT INTO spans_raw (trace_id, span_id, start_time_unix_nano, ingest_seq, "
        "received_at, trace_n) SELECT md5(i::VARCHAR), 'a', 0, i, now(), i "
        f"FROM range(1, {SEEDED + 1}) t(i)"
    )
    if by_trace_id:
        con.execute("CREATE INDEX spans_raw_trace_id ON spans_raw (trace_id)")
    con.close()
    con = duckdb.connect(path)  # (nothing of the indexes in memory)
    assert con.execute(INDEX_MEMORY_SQL).fetchall()[0][0] == 0
    con.execute(
        "INSERT INTO spans_raw (trace_id, span_id, start_time_unix_nano, ingest_seq, "
        "received_at, trace_n) SELECT md5(random()::VARCHAR), 'a', 0, i, now(), i "
        f"FROM range({SEEDED + 1}, {SEEDED + NEW + 1}) t(i)"
    )
    held = con.execute(INDEX_MEMORY_SQL).fetchall()[0][0] / (1 << 20)
    con.close()
    return held


def test_new_traces_touch_one_edge_of_the_index_by_number(tmp_path):
    """The point of the numbers: the new traces of a commit load a sliver of spans_raw's
    index by number, where an index by their random ids is loaded about whole."""
    by_number = _index_memory_of_new_rows(str(tmp_path / "n.duckdb"), by_trace_id=False)
    by_id = _index_memory_of_new_rows(str(tmp_path / "i.duckdb"), by_trace_id=True)
    assert by_id - by_number > 4 * by_number, (by_number, by_id)


def test_a_store_from_before_derives_nothing_anew_for_the_numbers(tmp_path):
    """The views that read a table of rows per trace whole leave its number out, so their
    SQL changed, not their rows: tables derived by the SQL from before are current (and
    stamped so), while SQL that differs otherwise is derived anew."""
    store = Store(tmp_path / "s.duckdb")
    store.insert(turn(0))
    store.derive_all()
    files = sql_files()
    earlier = SqlFiles({n: t.replace(LEFT_OUT, "") for n, t in files.texts.items()})
    changed = [t for t, v, _ in DERIVED if earlier.version(v) != files.version(v)]
    assert "turns_mat" in changed and "message_keys_mat" in changed
    for table, view, _ in DERIVED:
        store.con.execute(
            "INSERT OR REPLACE INTO otel_threads_derived VALUES (?, ?)",
            [table, earlier.version(view)],
        )
    assert Deriver(store.con).stale() == []
    stamps = dict(store.rows("SELECT name, version FROM otel_threads_derived"))
    assert {t: stamps[t] for t, _, _ in DERIVED} == {t: files.version(v) for t, v, _ in DERIVED}
    store.con.execute("UPDATE otel_threads_derived SET version = 'other' WHERE name = 'turns_mat'")
    assert ("turns_mat", "derive_turns") in Deriver(store.con).stale()


def test_retention_deletes_the_numbers_of_the_traces_it_deletes(tmp_path):
    """A thread pruned takes its traces' numbers with it; a live thread's stay."""
    store = Store(tmp_path / "s.duckdb")
    store.insert(chat_turn(0, "old", [("user", "q0")], "a0", at=0))
    # (the second in a generation of its own: retention deletes in each)
    trace_numbers._begin_generation(store.con, trace_numbers.generations(store.con))
    store.insert(chat_turn(1, "new", [("user", "q1")], "a1", at=600))
    store.insert(chat_turn(2, "old", [("user", "q2")], "a2", at=1))
    store.derive_all()
    assert len(numbers(store)) == 3
    assert store.rows("SELECT count(*) FROM trace_numbers_1") == [(2,)]
    before = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=(T0 + 300 * 60 * 10**9) // 1000)
    assert prune(store.con, before).traces == 2
    assert list(numbers(store)) == [format(7001, "032x")]
    assert misnumbered(store.con) == dict.fromkeys(NUMBERED, 0)


def test_real_producers_spans_and_log_records_are_numbered_with_their_derived_rows(tmp_path):
    """The real producers' fixtures, their log records (GenAI events) in a commit before
    their spans: every row of every table carries its trace's number, a trace whose log
    records came first included."""
    spans, logs = fixture_tables()
    path = file_store(tmp_path / "p.duckdb", [(spans.slice(0, 0), logs), (spans, logs.slice(0, 0))])
    con = duckdb.connect(path)
    try:
        assert misnumbered(con) == dict.fromkeys(NUMBERED, 0)
        assert (
            con.execute(
                "SELECT count(*), count(trace_n) FROM logs WHERE trace_id IS NOT NULL"
            ).fetchall()[0][0]
            > 0
        )
        assert con.execute("SELECT count(*) FROM message_keys_mat").fetchall()[0][0] > 0
    finally:
        con.close()


def writer_numbers(path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(con.execute("SELECT trace_id, trace_n FROM trace_numbers").fetchall())
    finally:
        con.close()


def test_the_writer_looks_up_only_the_traces_its_filter_may_have_seen(tmp_path, monkeypatch):
    """The writer's Bloom filter of numbered traces (SeenTraces) is built from the file
    it opens and grows with what it numbers: a late span of a trace stored before the
    writer opened, or before the filter was sized again, keeps its trace's number (a
    filter missing it would insert the trace again: a primary-key error, the batch
    refused), and a new trace is numbered without a lookup."""
    path = tmp_path / "w.duckdb"
    writer = Writer(str(path)).start()
    try:
        for i in range(3):
            writer.write("spans", spans_table(turn(i)), timeout=DEADLINE_S)
    finally:
        writer.close()
    first = writer_numbers(path)
    assert len(first) == 3

    looked_up: list[list[str]] = []
    real_lookup = trace_numbers.lookup
    monkeypatch.setattr(
        trace_numbers,
        "lookup",
        lambda con, ids: looked_up.append(list(ids)) or real_lookup(con, ids),
    )
    monkeypatch.setattr(SeenTraces, "MIN_TRACES", 4)  # sized for 6: doubles on the way
    writer = Writer(str(path)).start()
    try:
        late = span(7001, 999, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7001)
        written = writer.write("spans", spans_table([late, *turn(10)]), timeout=DEADLINE_S)
        assert written.rows == len(turn(10)) + 1
        assert looked_up == [[format(7001, "032x")]]  # the old trace only
        sizes = [writer._seen.capacity]
        for i in range(20, 30):
            writer.write("spans", spans_table(turn(i)), timeout=DEADLINE_S)
            sizes.append(writer._seen.capacity)
        assert sizes[0] == 6 and sizes[-1] > 6  # sized again, from the file
        late2 = span(7010, 998, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7010)
        writer.write("spans", spans_table([late2, *turn(2)]), timeout=DEADLINE_S)  # + redelivery
        assert writer.stats.failed_batches == 0
    finally:
        writer.close()
    now = writer_numbers(path)
    assert {t: now[t] for t in first} == first
    assert len(now) == 3 + 1 + 10
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert misnumbered(con)["spans_raw"] == 0
        assert con.execute(
            "SELECT count(*) FROM spans_raw WHERE span_id = ?", [format(998, "016x")]
        ).fetchall() == [(1,)]
    finally:
        con.close()


class _Counted(str):
    """An insert's SQL that counts the statements formatted from it, by source."""

    sources: list[str]

    def format(self, **kwargs) -> str:
        self.sources.append(kwargs["source"])
        return super().format(**kwargs)


def test_spans_of_a_trace_numbered_by_their_batch_skip_the_redelivery_lookup(tmp_path, monkeypatch):
    """No span of a trace is stored before its trace is numbered: the spans of the traces
    a batch numbers go in without the lookup of stored spans that drops redeliveries,
    the others (a late span of a stored trace, a redelivery) through it, as before."""
    counted = _Counted(insert._INSERT["spans"])
    counted.sources = []
    monkeypatch.setitem(insert._INSERT, "spans", counted)
    path = tmp_path / "fresh.duckdb"
    writer = Writer(str(path)).start()
    try:
        writer.write("spans", spans_table(turn(1)), timeout=DEADLINE_S)
        assert counted.sources == []  # all new: no lookup
        late = span(7001, 999, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7001)
        writer.write("spans", spans_table([*turn(1), late, *turn(2)]), timeout=DEADLINE_S)
        assert counted.sources == ["__known"]  # turn 1 again and its late span, alone
        assert writer.stats.duplicates["spans"] == len(turn(1))
        writer.write("spans", spans_table([*turn(3), *turn(3)]), timeout=DEADLINE_S)
        assert len(counted.sources) == 2 and counted.sources[1].startswith("(SELECT")
        assert writer.stats.failed_batches == 0
    finally:
        writer.close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        stored = con.execute(
            "SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans_raw"
        ).fetchall()
        assert stored == [(3 * len(turn(1)) + 1, 3 * len(turn(1)) + 1)]
        assert misnumbered(con)["spans_raw"] == 0
    finally:
        con.close()


def test_trace_hashes_are_the_same_for_an_id_whatever_batch_it_comes_in():
    """Ids as producers send them (32 lowercase hex digits) are hashed by their bits;
    any other id (another length, upper case, not hex) by Python's hash; an id's hash
    does not depend on its neighbours, and the filter finds every id it took in."""
    plain = [format(random.getrandbits(128), "032x") for _ in range(300)]
    odd = ["ABCDEF" * 5 + "01", "x" * 32, "é" * 16, "12", ""]
    alone = trace_hashes(pa.array(plain))
    mixed = trace_hashes(pa.array(plain[:100] + odd + plain[100:]))
    assert list(mixed[:100]) + list(mixed[105:]) == list(alone)
    assert list(trace_hashes(pa.array(plain).slice(7, 50))) == list(alone[7:57])
    assert [trace_hashes(pa.array([o]))[0] for o in odd] == list(mixed[100:105])
    assert len(set(alone)) == 300
    assert int(alone[0]) != int(plain[0][:16], 16)  # (mixed, not the id's bits as they are)
    con = duckdb.connect()
    con.execute("CREATE TABLE trace_numbers (trace_id VARCHAR PRIMARY KEY, trace_n BIGINT)")
    con.execute("INSERT INTO trace_numbers SELECT unnest(?), 1", [plain[:200] + odd])
    seen = SeenTraces(con)
    assert seen.count == 205 and seen.maybe(mixed[:205]).all()
    fresh = trace_hashes(pa.array(plain[200:]))
    assert seen.maybe(fresh).sum() <= 1  # (one in about 2,000 answers "maybe")
    seen.add(fresh)
    assert seen.maybe(fresh).all()


def test_a_trace_the_filter_missed_is_looked_up_and_the_batch_written(tmp_path):
    """Were the filter to miss a numbered trace (a bug), the insert of its number fails
    on the key: the writer builds the filter again and commits the batch, nothing
    refused (an exporter may drop a refused batch)."""
    path = tmp_path / "w.duckdb"
    writer = Writer(str(path)).start()
    try:
        writer.write("spans", spans_table(turn(0)), timeout=DEADLINE_S)
        writer._seen._bits[:] = 0  # forgets every trace
        late = span(7000, 999, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7000)
        assert writer.write("spans", spans_table([late]), timeout=DEADLINE_S).rows == 1
        assert writer.stats.failed_batches == 0
    finally:
        writer.close()
    assert len(writer_numbers(path)) == 1


def test_the_writer_counts_numbers_on_from_the_largest_given(tmp_path):
    """The writer numbers new traces itself, on from the largest number given, whether
    the numbers were drawn from the sequence of the stores before (and bench/synth.py)
    or counted by a writer before it opened the file: none is given twice, and the
    sequence is no longer drawn from."""
    path = tmp_path / "n.duckdb"
    con = connect(str(path))
    con.execute("SELECT nextval('trace_n_seq') FROM range(5)").fetchall()  # (as before 0024)
    con.close()
    for first in range(2):
        writer = Writer(str(path)).start()
        try:
            for i in range(2 * first, 2 * first + 2):
                writer.write("spans", spans_table(turn(i)), timeout=DEADLINE_S)
        finally:
            writer.close()
    con = connect(str(path), derive_now=False)
    try:
        con.execute("BEGIN TRANSACTION")  # and without the writer's filter, as ClickHouse's
        table = spans_table(turn(9))
        insert.insert_batch(con, "spans", table, 1000, 0, queue_derive=True)
        con.execute("COMMIT")
        given = con.execute("SELECT trace_n FROM trace_numbers ORDER BY trace_n").fetchall()
        assert [n for (n,) in given] == [6, 7, 8, 9, 10]
        assert misnumbered(con)["spans_raw"] == 0
        drawn = "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'trace_n_seq'"
        assert con.execute(drawn).fetchall() == [(5,)]
    finally:
        con.close()


def test_the_writer_adds_numbers_to_the_newest_generation_and_begins_the_next(
    tmp_path, monkeypatch
):
    """Numbers go into tables of at most GENERATION traces (trace_numbers_0, _1, ...),
    read together through the view trace_numbers: the writer begins the next when the
    newest is full, a late span of a trace in an older one keeps its number, a commit
    rolled back after beginning one leaves the next commit to begin it again."""
    monkeypatch.setattr(trace_numbers, "GENERATION", 2)
    path = tmp_path / "w.duckdb"
    writer = Writer(str(path)).start()
    try:
        for i in range(5):  # (a trace each)
            writer.write("spans", spans_table(turn(i)), timeout=DEADLINE_S)
        con = writer.store.con
        assert trace_numbers.generations(con) == [f"trace_numbers_{g}" for g in range(3)]
        sizes = [
            con.execute(f"SELECT count(*) FROM trace_numbers_{g}").fetchall()[0][0]
            for g in range(3)
        ]
        assert sizes == [2, 2, 1]
        late = span(7000, 999, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7000)
        writer.write("spans", spans_table([late]), timeout=DEADLINE_S)  # (in generation 0)
        assert writer._seen.newest == "trace_numbers_2"
        # a commit that began generation 3, then failed: rolled back with it
        real_insert, failed = trace_numbers.number, []

        def failing(con, batch, seen=None):
            out = real_insert(con, batch, seen)
            if not failed and seen.newest == "trace_numbers_3":
                failed.append(seen.newest)
                raise duckdb.InvalidInputException("a bad batch")
            return out

        monkeypatch.setattr(insert, "number", failing)
        writer.write("spans", spans_table(turn(5)), timeout=DEADLINE_S)  # fills 2
        with pytest.raises(duckdb.InvalidInputException):
            writer.write("spans", spans_table(turn(6)), timeout=DEADLINE_S)
        assert failed == ["trace_numbers_3"]
        writer.write("spans", spans_table(turn(6)), timeout=DEADLINE_S)
        assert trace_numbers.generations(writer.store.con)[-1] == "trace_numbers_3"
        assert writer.stats.failed_batches == 1
    finally:
        writer.close()
    now = writer_numbers(path)
    assert len(now) == len(set(now.values())) == 7
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert misnumbered(con)["spans_raw"] == 0
        assert con.execute(
            "SELECT trace_n FROM spans_raw WHERE span_id = ?", [format(999, "016x")]
        ).fetchall() == [(now[format(7000, "032x")],)]
    finally:
        con.close()


def test_the_writer_index_stays_the_size_of_a_generation(tmp_path, monkeypatch):
    """On a store of 300,000 numbered traces, 2,000 new random traces load a sliver of
    index into memory: the newest generation's, not the whole key's."""

    def loaded(generation: int) -> float:
        rnd = random.Random(generation)  # (random trace ids, as producers make them)
        monkeypatch.setattr(trace_numbers, "GENERATION", generation)
        path = tmp_path / f"g{generation}.duckdb"
        con = connect(str(path), derive_now=False)
        con.execute(
            "INSERT INTO trace_numbers_0 SELECT md5(i::VARCHAR), -i FROM range(1, 300001) t(i)"
        )
        con.execute("CHECKPOINT")
        con.close()
        writer = Writer(str(path)).start()
        try:
            for _ in range(10):
                spans = [span(rnd.getrandbits(128), 1, "s", 0, {}) for _ in range(200)]
                writer.write("spans", spans_table(spans), timeout=DEADLINE_S)
            with writer.store.cursor() as cur:
                ((art,),) = cur.execute(INDEX_MEMORY_SQL).fetchall()
        finally:
            writer.close()
        return art / 2**20

    small, whole = loaded(trace_numbers.GENERATION), loaded(1 << 40)
    assert whole > 4 * small, (small, whole)


def test_a_refresh_looks_up_no_number_of_a_trace_the_writer_queued(tmp_path, monkeypatch):
    """The queue's rows carry the numbers the writer gave their traces (migration 0021):
    a refresh reads its batch's rows through the tables' trace_n indexes without looking
    their ids up in trace_numbers. A trace queued without one (as before 0021, or by a
    rebuild) is looked up, with the same rows derived."""
    looked_up: list[str] = []
    real_lookup = scoped.lookup
    monkeypatch.setattr(
        scoped,
        "lookup",
        lambda con, ids, table: looked_up.extend(ids) or real_lookup(con, ids, table),
    )
    store = Store(tmp_path / "s.duckdb")
    for i in range(4):
        store.insert(turn(i))
    queued = store.rows("SELECT trace_id, trace_n FROM derive_queue ORDER BY trace_n")
    assert queued == sorted(numbers(store).items(), key=lambda p: p[1])
    store.derive_all()
    late = span(7001, 999, "late", 0, {"gen_ai.conversation.id": "t"}, parent=16 * 7001)
    store.insert([late])  # a late span of a trace derived before
    store.derive_all()
    assert looked_up == []
    for i in (4, 5):
        store.insert(turn(i))
    unnumbered = format(7004, "032x")
    store.con.execute("UPDATE derive_queue SET trace_n = NULL WHERE trace_id = ?", [unnumbered])
    store.derive_all()
    assert looked_up == [unnumbered]
    assert misnumbered(store.con) == dict.fromkeys(NUMBERED, 0)
    store.assert_kept_equals_scratch()


def test_the_writer_inserts_arrow_rows_by_column_name(tmp_path):
    """The writer's inserts of Arrow rows (no view registered) go by column name, as an
    INSERT ... BY NAME: a column the rows lack is null, a column the table lacks is
    refused, not put in another's place."""
    con = connect(str(tmp_path / "a.duckdb"), derive_now=False)
    try:
        insert._append(con, "derive_queue", pa.table({"trace_n": [3], "trace_id": ["a"]}))
        assert con.execute("SELECT * FROM derive_queue").fetchall() == [
            ("a", None, None, None, None, 3)
        ]
        with pytest.raises(ValueError, match=r"derive_queue has no column \['x'\]"):
            insert._append(con, "derive_queue", pa.table({"trace_id": ["b"], "x": [1]}))
    finally:
        con.close()
