"""Derivation side by side (issue 14): several derive workers, each a share of the
threads, give the rows of a derivation from scratch; a refresh that needs a thread
another holds, or has just changed, rolls back and goes through after it
(otel_threads.store.claims)."""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import duckdb
import pytest
from stored_app import KEPT_VIEWS, assert_turn_keys_cover, kept_sql
from test_derive_bounds import spans_table
from test_incremental_derive import chat_turn

from otel_threads.store import connect
from otel_threads.store.claims import Claims, Contended, Share, SharedLock
from otel_threads.store.derive import Deriver
from otel_threads.store.derive_worker import DERIVE_NICE, DerivePool
from otel_threads.store.store import Store
from otel_threads.store.writer import Writer

DEADLINE_S = 60.0
THREADS = [f"chat-{t}" for t in range(8)]


def turn(t: int, k: int, linked_only: bool = False) -> list[dict]:
    """Turn ``k`` of thread ``t`` (trace and turn ids from 100 t + k), answering turn k - 1;
    ``linked_only``: without a thread id, so it takes its thread along that link."""
    i = 100 * t + k
    spans = chat_turn(
        i,
        THREADS[t],
        [("user", f"question {k} of {t}")],
        f"answer {k} of {t}",
        previous=i - 1 if k else None,
    )
    if linked_only:
        for span in spans:
            span["attributes"] = [
                a for a in span["attributes"] if a["key"] != "gen_ai.conversation.id"
            ]
    return spans


def share(thread_id: str | None, parts: int) -> int:
    """The share of the threads (`Queue._oldest`) a trace queued with ``thread_id`` is in."""
    with connect(":memory:") as con:
        return (
            0
            if thread_id is None
            else con.execute("SELECT hash(?) % ?", [thread_id, parts]).fetchone()[0]
        )


def kept_equals_scratch(con) -> None:
    assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
    for view in KEPT_VIEWS:
        kept = con.execute(kept_sql(view)).fetchall()
        assert kept == con.execute(f"SELECT * FROM derive_{view} ORDER BY ALL").fetchall(), view
    assert_turn_keys_cover(con)


def wait(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S}s"
        time.sleep(0.02)


# -- the pieces ---------------------------------------------------------------------------


def test_claims_keep_two_transactions_off_the_same_keys_and_stale_snapshots() -> None:
    claims = Claims()
    a, b = claims.begin(), claims.begin()
    claims.claim(a, [("thread", "x"), ("trace", "1")])
    claims.claim(a, [("thread", "x")])  # (again, by its holder: fine)
    with pytest.raises(Contended):
        claims.claim(b, [("thread", "y"), ("thread", "x")])
    claims.claim(b, [("thread", "y")])  # all or none: y was not taken by the refusal
    claims.release(a, committed=True)
    with pytest.raises(Contended):  # b began before a committed x: its snapshot lacks it
        claims.claim(b, [("thread", "x")])
    c = claims.begin()
    claims.claim(c, [("thread", "x")])  # c began after: it sees a's commit
    claims.release(c, committed=False)
    claims.release(b, committed=False)
    d = claims.begin()
    claims.claim(d, [("thread", "x"), ("thread", "y"), ("trace", "1")])
    claims.release(d, committed=True)
    assert claims._changed == {}  # (no transaction open: no mark is kept)


def test_a_shared_lock_is_held_by_refreshes_together_and_by_anything_else_alone() -> None:
    lock = SharedLock()
    entered = threading.Event()
    with lock.shared():
        held_too: list[bool] = []
        other = threading.Thread(target=lambda: held_too.append(lock_shared_once(lock)))
        other.start()
        other.join(5)
        assert held_too == [True]  # two refreshes at once
        assert lock.locked()
        assert not lock.acquire(blocking=False)
        assert not lock.acquire(timeout=0.05)
        alone: list[bool] = []
        waiter = threading.Thread(target=lambda: alone.append(lock.acquire(timeout=10)))
        waiter.start()
        wait(lambda: lock._waiting == 1, "a waiter")
        late = threading.Thread(target=lambda: (lock_shared_once(lock), entered.set()))
        late.start()
        time.sleep(0.1)
        assert not entered.is_set()  # one waiting to hold it alone keeps new ones out
    waiter.join(5)
    assert alone == [True]
    assert not entered.is_set()
    lock.release()
    late.join(5)
    assert entered.is_set()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def lock_shared_once(lock: SharedLock) -> bool:
    with lock.shared():
        return True


# -- derivers side by side ----------------------------------------------------------------


def test_a_refresh_of_a_thread_another_holds_rolls_back_and_goes_through_after(tmp_path) -> None:
    """A turn with no thread id is queued in the first share; its link takes it into a
    thread of the other share. While the other deriver holds that thread, the refresh
    rolls back (`Contended`), the trace stays queued and nothing of it is written; once
    the other has committed, a refresh that began before still refuses (its snapshot
    lacks that commit), and the next derives it as from scratch."""
    con = connect(str(tmp_path / "s.duckdb"))
    claims = Claims()
    t = next(t for t in range(len(THREADS)) if share(THREADS[t], 2) == 1)
    first = Deriver(con.cursor(), Share(0, 2, claims))
    second = Deriver(con.cursor(), Share(1, 2, claims))
    writer = Store_(con)
    writer.insert(turn(t, 0))
    assert first.refresh() == 0  # (not its share)
    assert second.refresh() == 1
    writer.insert(turn(t, 1, linked_only=True))  # queued with no thread id: the first's
    assert second.refresh() == 0
    other = claims.begin()
    claims.claim(other, [("thread", THREADS[t])])
    with pytest.raises(Contended):
        first.refresh()
    assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM turns_mat").fetchall() == [(1,)]
    stale = claims.begin()  # a transaction that began before the other commits
    claims.release(other, committed=True)
    with pytest.raises(Contended):
        claims.claim(stale, [("thread", THREADS[t])])
    claims.release(stale, committed=False)
    assert first.refresh() == 1
    kept_equals_scratch(con)
    assert con.execute(
        "SELECT turn_count FROM threads_mat WHERE thread_id = ?", [THREADS[t]]
    ).fetchall() == [(2,)]


class Store_:
    """Commits as the writer does, on ``con``."""

    def __init__(self, con) -> None:
        from otel_threads.store.insert import insert_batch

        self._insert, self.con, self.seq = insert_batch, con, 1

    def insert(self, spans: list[dict]) -> None:
        self.con.execute("BEGIN TRANSACTION")
        self.seq += self._insert(self.con, "spans", spans_table(spans), self.seq, 0, True)
        self.con.execute("COMMIT")


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own priority is Linux's")
def test_derivation_runs_at_the_lowest_cpu_priority_and_the_writer_at_the_processs(
    tmp_path,
) -> None:
    """Ingest comes first on a machine whose cores are all busy: each derive worker's
    thread runs at DERIVE_NICE, the writer's (and the rest of the process) at the
    process's own priority; and the workers still derive what is committed."""
    store = Store(str(tmp_path / "s.duckdb"), derive_workers=2, recycle_after_s=None)
    writer = Writer(store).start()
    try:
        writer.write("spans", spans_table(turn(0, 0)), timeout=DEADLINE_S)
        assert store.sync(DEADLINE_S)
        workers = store._derive.workers
        assert len(workers) == 2
        for worker in workers:
            wait(lambda w=worker: w._thread.native_id is not None, "derive thread")
            assert os.getpriority(os.PRIO_PROCESS, worker._thread.native_id) == DERIVE_NICE
        process = os.getpriority(os.PRIO_PROCESS, 0)
        assert process < DERIVE_NICE
        assert os.getpriority(os.PRIO_PROCESS, writer._thread.native_id) == process
        with store.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM threads_mat").fetchall() == [(1,)]
    finally:
        writer.close()
        store.close()


def test_a_commit_made_during_a_refresh_is_as_old_as_it_is(tmp_path) -> None:
    """Under sustained ingest a worker waits for the oldest commit it has not derived to
    be ``max_lag_s`` old: a commit that came in while a refresh ran counts from when it
    came, not from when the refresh ended (which would add a refresh's time to the lag)."""
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=None)
    writer = Writer(store).start()
    worker, entered, gate = store._derive, threading.Event(), threading.Event()
    refresh = worker._deriver.refresh

    def held(*args, **kwargs):
        entered.set()
        gate.wait()
        return refresh(*args, **kwargs)

    worker._deriver.refresh = held
    try:
        writer.write("spans", spans_table(turn(0, 0)), timeout=DEADLINE_S)
        assert entered.wait(DEADLINE_S)  # the refresh of the first commit is under way
        worker._busy, worker.max_lag_s = (lambda: True), 3600.0  # (no refresh after it)
        before = time.monotonic()
        writer.write("spans", spans_table(turn(0, 1)), timeout=DEADLINE_S)
        after = time.monotonic()
        gate.set()
        wait(lambda: worker._derived == 1, "end of the refresh")
        assert worker._reported == 2
        assert before <= worker._oldest <= after
        worker.max_lag_s = 0.0
        assert store.sync(DEADLINE_S)
    finally:
        gate.set()
        writer.close()
        store.close()


def test_a_closing_store_stops_its_reads_before_it_waits_for_derivation(tmp_path) -> None:
    """A read still running is stopped first (at DERIVE_NICE, derivation's last refreshes
    would get no CPU beside it): with derivation held, a read of statement after long
    statement on one cursor (an interrupt between two of them is forgotten: they are sent
    again) ends interrupted, and only then does the close wait for derivation."""
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=None)
    writer = Writer(store).start()
    worker, gate = store._derive, threading.Event()
    refresh = worker._deriver.refresh
    worker._deriver.refresh = lambda *a, **k: gate.wait() and refresh(*a, **k)
    writer.write("spans", spans_table(turn(0, 0)), timeout=DEADLINE_S)
    writer.close()
    reading, ended = threading.Event(), []

    def read() -> None:
        with store.cursor() as cur:
            reading.set()
            while True:
                try:
                    cur.execute("SELECT sum(hash(a::VARCHAR)) FROM range(10000000000) t(a)")
                except duckdb.InterruptException:
                    ended.append("interrupted")
                    return

    reader = threading.Thread(target=read)
    reader.start()
    assert reading.wait(DEADLINE_S)
    closer = threading.Thread(target=store.close)
    closer.start()
    try:
        reader.join(DEADLINE_S)
        assert ended == ["interrupted"] and not gate.is_set()
        assert closer.is_alive()  # (waiting for derivation)
    finally:
        gate.set()
        closer.join(DEADLINE_S)
        reader.join(DEADLINE_S)
    assert not closer.is_alive()
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:  # (as it was left)
        assert con.execute(
            "SELECT (SELECT count(*) FROM derive_queue), (SELECT count(*) FROM threads_mat)"
        ).fetchall() == [(0, 1)]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_store_closed_with_a_deadline_leaves_what_it_did_not_derive_queued(
    tmp_path, caplog, workers: int
) -> None:
    """Closing gives derivation at most ``drain_timeout`` to work its queue off (the
    collector's grace, which a starved derivation, at DERIVE_NICE behind long reads,
    must not outlast): past it, the refresh under way ends, the warning says what is
    left, the rest stays queued, and the next open derives it as from scratch."""
    path = str(tmp_path / "s.duckdb")
    store = Store(path, derive_workers=workers, recycle_after_s=None)
    writer = Writer(store).start()
    pool = store._derive.workers if workers > 1 else [store._derive]
    gate = threading.Event()
    for worker in pool:

        def held(*args, refresh=worker._deriver.refresh, **kwargs) -> int:
            gate.wait()  # then two traces a refresh
            return refresh(limit=2)

        worker._deriver.refresh = held
    writer.write("spans", spans_table([s for t in range(8) for s in turn(t, 0)]), timeout=60)
    writer.close()
    closer = threading.Thread(target=store.close, kwargs={"drain_timeout": 0.1})
    closer.start()
    wait(lambda: all(w._stopping for w in pool), "derivation told to stop")
    gate.set()
    closer.join(DEADLINE_S)
    assert not closer.is_alive()
    assert any("stay queued" in r.getMessage() for r in caplog.records)
    with connect(path) as con:
        ((queued, derived),) = con.execute(
            "SELECT (SELECT count(*) FROM derive_queue), (SELECT count(*) FROM threads_mat)"
        ).fetchall()
    assert queued + derived == 8 and derived <= 2 * workers, (queued, derived)
    store = Store(path, recycle_after_s=None)
    writer = Writer(store).start()
    try:
        assert store.sync(DEADLINE_S)
        with store.cursor() as cur:
            kept_equals_scratch(cur)
            assert cur.execute("SELECT count(*) FROM threads_mat").fetchall() == [(8,)]
    finally:
        writer.close()
        store.close()


def test_workers_side_by_side_derive_as_from_scratch(tmp_path) -> None:
    """Eight threads of twelve turns, every fourth turn with no thread id (it takes its
    thread along its link: queued in the first share, derived into any), committed in
    shuffled batches while two workers derive: each derives a share, and the kept rows
    are those of a derivation from scratch."""
    store = Store(str(tmp_path / "s.duckdb"), derive_workers=2, recycle_after_s=None)
    writer = Writer(store).start()
    try:
        pool = store._derive
        assert isinstance(pool, DerivePool) and len(pool.workers) == 2
        derived = [0, 0]
        for i, worker in enumerate(pool.workers):
            refresh = worker._deriver.refresh

            def counted(*args, refresh=refresh, i=i, **kwargs) -> int:
                n = refresh(*args, **kwargs)
                derived[i] += n
                return n

            worker._deriver.refresh = counted
        turns = [turn(t, k, linked_only=k % 4 == 3) for t in range(8) for k in range(12)]
        rnd = random.Random(14)
        rnd.shuffle(turns)
        while turns:
            k = rnd.randint(1, 6)
            batch, turns = turns[:k], turns[k:]
            writer.write("spans", spans_table([s for t in batch for s in t]), timeout=DEADLINE_S)
            if rnd.random() < 0.3:
                assert store.sync(DEADLINE_S)
        assert store.sync(DEADLINE_S)
        with store.cursor() as cur:
            kept_equals_scratch(cur)
            assert cur.execute("SELECT count(*), sum(turn_count) FROM threads_mat").fetchall() == [
                (8, 96)
            ]
        assert all(derived), derived  # each worker derived its share
        assert pool.failures == 0
    finally:
        writer.close()
        store.close()


def test_a_worker_held_up_by_another_derives_once_it_lets_go(tmp_path) -> None:
    """A worker whose refresh needs a thread held beside it (here by the test) tries again
    until it is let go: `sync` waits meanwhile, and then the rows are as from scratch."""
    store = Store(str(tmp_path / "s.duckdb"), derive_workers=2, recycle_after_s=None)
    writer = Writer(store).start()
    try:
        writer.write("spans", spans_table(turn(0, 0)), timeout=DEADLINE_S)
        assert store.sync(DEADLINE_S)
        pool = store._derive
        assert isinstance(pool, DerivePool)
        claims = pool.workers[0]._claims
        assert claims is not None and claims is pool.workers[1]._claims
        holder = claims.begin()
        claims.claim(holder, [("thread", THREADS[0])])
        writer.write("spans", spans_table(turn(0, 1)), timeout=DEADLINE_S)
        assert not store.sync(0.5)  # held up
        claims.release(holder, committed=False)
        assert store.sync(DEADLINE_S)
        with store.cursor() as cur:
            kept_equals_scratch(cur)
        assert pool.failures == 0
    finally:
        writer.close()
        store.close()


def test_a_collector_with_two_derive_workers_serves_real_exports(tmp_path) -> None:
    """`--derive-workers 2` end to end: a real OTLP exporter's four threads (models whose
    prices each worker may look up at once) are derived as from scratch, each model
    priced once."""
    from test_thread_filters import converse

    from otel_threads.collector import Collector, Config

    db = str(tmp_path / "c.duckdb")
    c = Collector(
        Config(db=db, parse_workers=0, grpc=("127.0.0.1", 0), http=None, api=None, derive_workers=2)
    )
    c.start()
    try:
        assert isinstance(c.store._derive, DerivePool) and len(c.store._derive.workers) == 2
        converse(c.endpoints.grpc)
        assert c.store.sync(DEADLINE_S)
        with c.store.cursor() as cur:
            kept_equals_scratch(cur)
            assert cur.execute("SELECT count(*) FROM threads").fetchall() == [(4,)]
            assert (
                cur.execute(
                    "SELECT provider, model, count(*) FROM model_prices GROUP BY ALL "
                    "HAVING count(*) > 1"
                ).fetchall()
                == []
            )
    finally:
        c.stop()


def test_a_trace_is_in_the_share_of_the_thread_any_of_its_queue_rows_names(tmp_path) -> None:
    """A trace's log records are queued with no thread id beside its spans' row: the
    trace stays in its thread's share (the first share takes only traces queued with no
    thread id at all)."""
    con = connect(str(tmp_path / "s.duckdb"))
    t = next(t for t in range(len(THREADS)) if share(THREADS[t], 2) == 1)
    Store_(con).insert(turn(t, 0))
    (trace,) = con.execute("SELECT DISTINCT trace_id FROM derive_queue").fetchone()
    con.execute("INSERT INTO derive_queue (trace_id, bytes) VALUES (?, 10)", [trace])  # (logs)
    con.execute("INSERT INTO derive_queue (trace_id, bytes) VALUES ('f' || ?, 10)", [trace[1:]])
    first, second = (Deriver(con.cursor(), Share(i, 2, Claims())) for i in range(2))
    assert first._oldest(10) == ["f" + trace[1:]]
    assert second._oldest(10) == [trace]
