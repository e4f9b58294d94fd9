"""How a writable open attaches the file: row groups of ROW_GROUP_SIZE rows (DuckDB does
not keep the size in the file), and a connection whose cursors see the store's tables
as a plain ``duckdb.connect`` would; and the threads list, read while a checkpoint runs."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest

from otel_threads.query import PAGE_SORT, query_threads
from otel_threads.schemas import ThreadsQueryReq
from otel_threads.store import checkpointing, connect
from otel_threads.store.checkpointing import VACUUM_EVERY_S, VACUUM_TASKS
from otel_threads.store.schema import ROW_GROUP_SIZE
from otel_threads.store.store import Store


def _row_groups(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(
        f"SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('{table}')"
    ).fetchone()[0]


def test_a_writable_open_appends_small_row_groups_every_time(tmp_path):
    path = str(tmp_path / "rg.duckdb")
    rows = 3 * ROW_GROUP_SIZE + 100
    con = connect(path)
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(?)", [rows])
    con.execute("CHECKPOINT")
    assert _row_groups(con, "t") == 4
    con.close()
    with duckdb.connect(path) as plain:  # DuckDB's default size would merge them...
        assert _row_groups(plain, "t") == 4  # ...once written; reading leaves them
    con = connect(path)  # a later open appends small groups again
    con.execute("INSERT INTO t SELECT range FROM range(?)", [rows])
    con.execute("CHECKPOINT")
    assert _row_groups(con, "t") == 8
    assert con.execute("SELECT count(*) FROM t").fetchone() == (2 * rows,)
    con.close()
    big = connect(path, row_group_size=122_880)  # the default, for comparison
    big.execute("CREATE TABLE u AS SELECT range AS i FROM range(?)", [rows])
    big.execute("CHECKPOINT")
    assert _row_groups(big, "u") == 1
    big.close()


@pytest.mark.parametrize(
    ("name", "catalog"),
    [("threads.duckdb", "threads"), ("memory.duckdb", "store"), ('it\'s a "store".db', None)],
)
def test_cursors_see_the_store_as_a_plain_connection_would(tmp_path, name, catalog):
    path = str(tmp_path / name)
    con = connect(path)
    cur = con.cursor()  # a new connection to the same database: it must see the file
    assert cur.execute("SELECT count(*) FROM otel_threads_migrations").fetchone()[0] > 0
    assert cur.execute("SELECT count(*) FROM threads").fetchone() == (0,)
    names = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
    assert "memory" not in names  # nothing else to write into by mistake
    if catalog is not None:
        assert cur.execute("SELECT current_database()").fetchone() == (catalog,)
    # past the memory limit it spills beside the file, as DuckDB does for a file it opens
    spill = cur.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    assert spill == f"{path}.tmp"
    cur.close()
    con.close()
    with duckdb.connect(path, read_only=True) as plain:  # plain DuckDB reads what it wrote
        assert plain.execute("SELECT count(*) FROM threads").fetchone() == (0,)


class _Recording:
    """A cursor that keeps the statements run on it."""

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        self.cur, self.statements = cur, []

    def execute(self, sql: str, params=None):
        self.statements.append((sql, params))
        return self.cur.execute(sql, params)


@pytest.fixture(scope="module")
def listed_store(tmp_path_factory):
    """A store of 3,000 threads, opened once for every sort of the list."""
    store = Store(str(tmp_path_factory.mktemp("ck") / "ck.duckdb")).open()
    with store.cursor() as cur:
        cur.execute(
            "INSERT INTO threads_mat (thread_id, last_updated, turn_count) SELECT "
            "'t' || range, TIMESTAMP '2026-01-01' + to_seconds(range), range % 7 "
            "FROM range(3000)"
        )
    yield store
    store.close()


@pytest.mark.parametrize("field", sorted(PAGE_SORT))
def test_the_threads_list_scans_with_no_filter_that_a_checkpoint_holds(listed_store, field):
    """The collector checkpoints every few seconds under ingest, and DuckDB holds a scan
    with a filter until the checkpoint has written its table
    (docs/repro/duckdb_checkpoint_reads.py). ORDER BY col LIMIT n filters its scan twice:
    the Top-N's dynamic filter, and late materialization's rowid join. The list's sort
    keys are not bare columns and the store turns late materialization off, so the
    statements of an unfiltered list page scan `threads_mat` with no filter at all."""
    with listed_store.cursor() as cur:

        def plan(sql: str, params=None) -> str:
            return "\n".join(r[1] for r in cur.execute(f"EXPLAIN {sql}", params).fetchall())

        # what a held scan looks like in a plan
        assert "Filters:" in plan("SELECT * FROM threads WHERE turn_count > ?", [2])
        assert "Dynamic Filter" in plan(
            "SELECT thread_id FROM threads ORDER BY last_updated DESC LIMIT 3"
        )
        recording = _Recording(cur)
        listed = query_threads(recording, ThreadsQueryReq(limit=3), [(field, "desc")])
        assert len(listed.threads) == 3 and listed.total == 3000
        assert recording.statements
        for sql, params in recording.statements:
            shown = plan(sql, params)
            assert "Filters:" not in shown and "rowid" not in shown, shown


class _ReadDuringCheckpoints:
    """The store's connection, where a read that filters an indexed table (`threads_mat`
    by thread id) runs beside each CHECKPOINT statement, begun 0.3 s into it: `held` says,
    per CHECKPOINT, whether its read still ran one second later (it waited for it: a
    read takes milliseconds, and DuckDB's debug setting makes a checkpoint seconds long)."""

    def __init__(self, store: Store) -> None:
        self.con, self.store, self.held = store._con, store, []

    def execute(self, sql: str, *args):
        if sql != "CHECKPOINT":
            return self.con.execute(sql, *args)
        found, took = [], []

        def read() -> None:
            begun = time.monotonic()
            with self.store.cursor() as cur:
                cur.execute("SELECT * FROM threads_mat WHERE thread_id = 't7'")
                found.extend(cur.fetchall())
            took.append(time.monotonic() - begun)

        reader = threading.Timer(0.3, read)
        reader.start()
        try:
            return self.con.execute(sql, *args)
        finally:
            reader.join()
            assert len(found) == 1 and took  # (the read ran, and found its row)
            self.held.append(took[0] >= 1.0)

    def __getattr__(self, name: str):
        return getattr(self.con, name)


def test_checkpoints_hold_no_filtered_read_but_a_vacuum(tmp_path):
    """DuckDB 2.0.1 holds every scan that filters an indexed table while a checkpoint
    runs, unless the checkpoint began beside another transaction
    (docs/repro/duckdb_checkpoint_reads.py): a thread's page (its rows by thread id)
    waited for every checkpoint under ingest. The store's checkpoints run beside a read
    transaction; every VACUUM_EVERY_S one is followed by a checkpoint alone, with nothing
    left to write, which vacuums and holds the reads."""
    store = Store(str(tmp_path / "beside.duckdb")).open()
    real = store._con
    try:
        with store.cursor() as cur:
            cur.execute(
                "INSERT INTO threads_mat (thread_id, last_updated, turn_count) SELECT "
                "'t' || range, TIMESTAMP '2026-01-01', 1 FROM range(3000)"
            )
            # each table a checkpoint writes waits this long before it installs it
            cur.execute("SET GLOBAL debug_checkpoint_scan_sleep_ms = 100")
        store._con = wrapped = _ReadDuringCheckpoints(store)
        for vacuum_due in (True, False, False, True):
            if vacuum_due:
                store._vacuumed_at -= VACUUM_EVERY_S
            with store.cursor() as cur:  # something for the checkpoint to write
                cur.execute(
                    "INSERT INTO threads_mat (thread_id, last_updated, turn_count) SELECT "
                    "'more' || range, TIMESTAMP '2026-01-02', 1 FROM range(100)"
                )
            wrapped.held.clear()
            assert store.checkpoint() and store.wal_bytes() == 0
            # the writes never hold the read; the vacuum after them does
            assert wrapped.held == ([False, True] if vacuum_due else [False])
        store._con = real
        with store.cursor() as cur:
            cur.execute("SET GLOBAL debug_checkpoint_scan_sleep_ms = 0")
    finally:
        store._con = real
        store.close()
    with duckdb.connect(str(tmp_path / "beside.duckdb"), read_only=True) as plain:
        assert plain.execute("SELECT count(*) FROM threads_mat").fetchall() == [(3400,)]


def test_a_vacuum_merges_a_few_row_groups_a_table_at_a_time(tmp_path):
    """A vacuum (which holds the reads while it runs) drops the row groups left empty and
    makes at most VACUUM_TASKS merges of thinned ones a table, each of at most a few row
    groups: the next vacuums go on until they leave what one vacuum without the bound
    would. The checkpoints between two vacuums merge nothing."""
    path = str(tmp_path / "vacuum.duckdb")
    store = Store(path).open()
    try:
        with store.cursor() as cur:
            cur.execute(
                "INSERT INTO threads_mat (thread_id, last_updated, turn_count) SELECT "
                "'t' || lpad(range::VARCHAR, 7, '0'), TIMESTAMP '2026-01-01', 1 "
                f"FROM range({40 * ROW_GROUP_SIZE})"
            )
        assert store.checkpoint()
        with store.cursor() as cur:
            assert _row_groups(cur, "threads_mat") == 40
            # three of every four rows of the table, and its 10th row group whole
            cur.execute(
                "DELETE FROM threads_mat WHERE hash(thread_id) % 4 <> 0 OR thread_id "
                f"BETWEEN 't{9 * ROW_GROUP_SIZE:07d}' AND 't{10 * ROW_GROUP_SIZE - 1:07d}'"
            )
        store._vacuumed_at = time.monotonic()  # no vacuum due
        assert store.checkpoint()
        with store.cursor() as cur:
            assert _row_groups(cur, "threads_mat") == 40
        counts = [40]
        while len(counts) < 3 or counts[-1] < counts[-2]:
            assert len(counts) < 40
            store._vacuumed_at -= VACUUM_EVERY_S
            with store.cursor() as cur:  # (a checkpoint of an empty WAL does nothing)
                cur.execute("SELECT nextval('checkpoint_seq')").fetchall()
            assert store.checkpoint()
            with store.cursor() as cur:
                counts.append(_row_groups(cur, "threads_mat"))
        # the empty one dropped, and a merge makes at most 4 thinned row groups 1
        assert 40 - 1 - 3 * VACUUM_TASKS <= counts[1] < 40
    finally:
        store.close()
    # a vacuum without the bound finds nothing more to merge
    con = connect(path)
    try:
        con.execute("SET max_vacuum_tasks = 100")
        con.execute("SELECT nextval('checkpoint_seq')").fetchall()
        con.execute("CHECKPOINT")
        assert _row_groups(con, "threads_mat") == counts[-1] < counts[1]
    finally:
        con.close()


class _VacuumRefused:
    """The store's connection, where DuckDB refuses the CHECKPOINT that vacuums (the
    second of a checkpoint: another connection committing) ``times`` times."""

    def __init__(self, con: duckdb.DuckDBPyConnection, times: int) -> None:
        self.con, self.times, self.checkpoints = con, times, 0

    def execute(self, sql: str, *args):
        if sql == "CHECKPOINT":
            self.checkpoints += 1
            if self.checkpoints % 2 == 0 and self.times:
                self.times -= 1
                raise duckdb.TransactionException("Cannot CHECKPOINT: (refused by the test)")
        return self.con.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self.con, name)


def test_a_vacuum_refused_is_tried_at_the_next_checkpoint(tmp_path):
    """A vacuum DuckDB refuses leaves the checkpoint done (the WAL folded but for the
    number it drew) and the vacuum due: the next checkpoint vacuums."""
    store = Store(str(tmp_path / "refused_vacuum.duckdb")).open()
    real = store._con
    try:
        store._vacuumed_at = due = time.monotonic() - VACUUM_EVERY_S
        store._con = wrapped = _VacuumRefused(real, times=1)
        with store.cursor() as cur:
            cur.execute("INSERT INTO threads_mat (thread_id, last_updated) VALUES ('t', now())")
        assert store.checkpoint() and wrapped.checkpoints == 2
        assert store._vacuumed_at == due  # still due
        assert store.checkpoint() and wrapped.checkpoints == 4  # written, then vacuumed
        assert store._vacuumed_at > due and store.wal_bytes() == 0
        assert store.checkpoint() and wrapped.checkpoints == 5  # no vacuum due
    finally:
        store._con = real
        store.close()


class _CatalogChangeBeside:
    """The store's connection, where a commit that changes the catalog follows the number
    a checkpoint draws from `checkpoint_seq`: after its read transaction began."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.changes = con, 0

    def execute(self, sql: str, *args):
        result = self.con.execute(sql, *args)
        if "checkpoint_seq" in sql:
            self.con.execute(f"CREATE TABLE changed_{self.changes} (x INTEGER)")
            self.changes += 1
        return result

    def __getattr__(self, name: str):
        return getattr(self.con, name)


def test_a_checkpoint_refused_beside_the_read_runs_without_it(tmp_path, monkeypatch):
    """DuckDB refuses a checkpoint beside a transaction begun before a commit that
    changed the catalog (its cleanup waits for that transaction): the store's checkpoint
    then runs again without it, and the WAL is folded all the same."""
    tried = []
    beside = checkpointing._beside_a_read
    monkeypatch.setattr(
        checkpointing, "_beside_a_read", lambda con: tried.append(beside(con)) or tried[-1]
    )
    store = Store(str(tmp_path / "refused.duckdb")).open()
    real = store._con
    try:
        store._vacuumed_at = time.monotonic()  # no vacuum due
        with store.cursor() as cur:
            cur.execute(
                "INSERT INTO threads_mat (thread_id, last_updated, turn_count) "
                "VALUES ('t', TIMESTAMP '2026-01-01', 1)"
            )
        assert store.wal_bytes() > 0
        store._con = _CatalogChangeBeside(real)
        assert store.checkpoint()
        assert tried == [False] and store._con.changes == 1  # refused beside the read...
        assert store.wal_bytes() == 0  # ...and checkpointed without it
        with store.cursor() as cur:  # the next, with no such commit, runs beside it
            cur.execute("INSERT INTO threads_mat (thread_id, last_updated) VALUES ('u', now())")
        store._con = real
        assert store.checkpoint() and tried == [False, True] and store.wal_bytes() == 0
    finally:
        store._con = real
        store.close()
