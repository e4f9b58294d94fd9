"""The store opened again while it runs (`Store.recycle_if_due`): in DuckDB 2.0.1 every
statement of a database open long gets slower, so after a while of derivation the
writer's thread closes the file and opens it again. Nothing may notice but the wait:
reads under way end first and new ones wait (no "store is closed"), commits wait,
derivation goes on from its queue, `sync` still means "derived", and the derived tables
are those of a derivation from scratch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from stored_app import kept_sql
from test_collector_process import span_batches

from otel_threads.otlp.decode import decode_traces_protobuf
from otel_threads.store import recycling
from otel_threads.store.store import Store
from otel_threads.store.writer import Writer

DEADLINE_S = 60.0


def wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S}s"
        time.sleep(0.02)


def tables(n: int, size: int, first_span_id: int = 1) -> list:
    """``n`` decoded batches of ``size`` spans (turns of 3 threads), as the writer takes them."""
    return [
        decode_traces_protobuf(encode_spans(b).SerializeToString()).table
        for b in span_batches(n, size, first_span_id)
    ]


def assert_derived_as_from_scratch(cur: duckdb.DuckDBPyConnection) -> None:
    assert cur.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
    for view in ("span_threads", "turns", "threads", "transcript"):
        kept = cur.execute(kept_sql(view)).fetchall()
        assert kept == cur.execute(f"SELECT * FROM derive_{view} ORDER BY ALL").fetchall(), view


def test_a_store_opened_again_under_load_loses_no_read_commit_or_derivation(tmp_path) -> None:
    """Exports committed and reads made without a pause while the store is opened again
    after each bit of derivation: every read answers (none meets a closed store), every
    export is acknowledged and stored once, `sync` returns only once all is derived, and
    the derived tables equal a derivation from scratch."""
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=0.05)
    writer = Writer(store).start()
    batches = tables(60, 5)
    errors: list[BaseException] = []
    reads = [0]
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                with store.cursor() as cur:
                    cur.execute("SELECT count(*) FROM threads").fetchall()
                    cur.execute("SELECT * FROM turns ORDER BY turn_id LIMIT 20").fetchall()
                reads[0] += 1
            except BaseException as exc:  # (any error fails the test)
                errors.append(exc)
                return

    readers = [threading.Thread(target=read, daemon=True) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        for i, table in enumerate(batches):
            writer.write("spans", table, timeout=DEADLINE_S)
            if i % 10 == 9:  # a pause: derivation runs, so the store is opened again
                reopens = (i + 1) // 10
                wait(lambda n=reopens: store.recycle_seconds.count >= n, "reopen")
        assert store.sync(DEADLINE_S)
        with store.cursor() as cur:  # right after sync: everything derived
            assert_derived_as_from_scratch(cur)
            assert cur.execute("SELECT count(*) FROM spans_raw").fetchall() == [(300,)]
    finally:
        stop.set()
        for r in readers:
            r.join(DEADLINE_S)
        writer.close()
        store.close()
    assert errors == []
    assert store.recycle_seconds.count >= 6
    assert reads[0] > 0
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    try:
        assert_derived_as_from_scratch(con)
    finally:
        con.close()


def test_opening_again_makes_a_new_database_instance(tmp_path) -> None:
    """What a reopen is for: the DuckDB database itself is new (not DuckDB's instance
    cache handing the same one back): a setting made globally on the old one is gone."""
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=None)
    writer = Writer(store).start()
    try:
        with store.cursor() as cur:
            cur.execute("SET GLOBAL default_null_order = 'nulls_first'")
            assert cur.execute("SELECT current_setting('default_null_order')").fetchall() == [
                ("NULLS_FIRST",)
            ]
        writer.write("spans", tables(1, 3)[0], timeout=DEADLINE_S)
        assert store.sync(DEADLINE_S)
        store.recycle_after_s = 0.0
        wait(lambda: store.recycle_seconds.count >= 1, "reopen")
        with store.cursor() as cur:
            assert cur.execute("SELECT current_setting('default_null_order')").fetchall() != [
                ("NULLS_FIRST",)
            ]
            assert cur.execute("SELECT count(*) FROM span_threads").fetchall() == [(3,)]
    finally:
        writer.close()
        store.close()


def test_a_read_under_way_puts_the_reopen_off_and_is_never_interrupted(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that outlasts `RECYCLE_READS_WAIT_S` keeps its connection: the reopen is
    put off (the reads that came meanwhile then go on), and it happens once the read
    has ended."""
    monkeypatch.setattr(recycling, "RECYCLE_READS_WAIT_S", 0.2)
    monkeypatch.setattr(recycling, "RECYCLE_RETRY_S", 0.3)
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=None)
    writer = Writer(store).start()
    try:
        writer.write("spans", tables(1, 3)[0], timeout=DEADLINE_S)
        assert store.sync(DEADLINE_S)
        with store.cursor() as held:
            store.recycle_after_s = 0.0  # due now: the writer tries, and puts it off
            time.sleep(1.5)  # (several tries: one a writer loop, at least every second)
            assert store.recycle_seconds.count == 0
            assert held.execute("SELECT count(*) FROM span_threads").fetchall() == [(3,)]
            with store.cursor() as other:  # a read that came meanwhile was let through
                assert other.execute("SELECT count(*) FROM spans_raw").fetchall() == [(3,)]
        wait(lambda: store.recycle_seconds.count >= 1, "reopen once the read ended")
        with store.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM span_threads").fetchall() == [(3,)]
    finally:
        writer.close()
        store.close()


def test_a_put_off_reopen_that_cannot_start_derivation_again_is_a_fault_that_heals(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reopen put off by a read starts derivation again on the connection still open;
    if DuckDB refuses that, the store takes a fault of kind "open" (no error escapes the
    writer's thread, which goes on): healing opens the file again, with derivation, and
    nothing written before or after is lost or left underived."""
    monkeypatch.setattr(recycling, "RECYCLE_READS_WAIT_S", 0.2)
    monkeypatch.setattr(recycling, "RECYCLE_RETRY_S", 3600.0)
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=None)
    writer = Writer(store).start()
    try:
        writer.write("spans", tables(1, 3)[0], timeout=DEADLINE_S)
        assert store.sync(DEADLINE_S)
        real = Store._derivation
        refused: list[str] = []

        def derivation(self: Store, con: duckdb.DuckDBPyConnection):
            if not refused:  # (the first start after this: the put-off reopen's)
                refused.append(threading.current_thread().name)
                raise duckdb.IOException("IO Error: injected: could not start derivation")
            return real(self, con)

        monkeypatch.setattr(Store, "_derivation", derivation)
        with store.cursor() as held:
            store.recycle_after_s = 0.0  # due now: put off by the read held
            wait(lambda: bool(refused), "a put-off reopen")
            store.recycle_after_s = None
            assert held.execute("SELECT count(*) FROM spans_raw").fetchall() == [(3,)]
        assert refused == ["otel-threads-writer"]
        assert store.recycle_seconds.count == 0
        wait(lambda: store.faults >= 1 and store.fault is None, "the fault, then healing")
        assert store._derive is not None  # (healing started derivation again)
        for table in tables(4, 3, first_span_id=100):
            writer.write("spans", table, timeout=DEADLINE_S)
        assert store.sync(DEADLINE_S)
        with store.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM spans_raw").fetchall() == [(15,)]
            assert_derived_as_from_scratch(cur)
    finally:
        writer.close()
        store.close()


def test_a_reopen_leaves_a_backlog_queued_and_the_new_derivation_works_it_off(
    tmp_path,
) -> None:
    """Derivation stopped for a reopen finishes the refresh under way, not the queue: the
    traces left stay queued, the new derivation works them off, a `sync` that waited
    on the old one returns once the new one has, and the counts of derivation (/metrics)
    go on from where they were."""
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=None)
    writer = Writer(store).start()
    try:
        busy = threading.Event()  # ingest "under way": derivation waits (up to its lag)
        store._busy, store.derive_max_lag_s = busy.is_set, 3600.0  # (the next worker's)
        derive = store._derive
        assert derive is not None
        derive._busy, derive.max_lag_s = busy.is_set, 3600.0
        busy.set()
        for table in tables(30, 3):
            writer.write("spans", table, timeout=DEADLINE_S)
        with store.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM derive_queue").fetchall()[0][0] == 30
        synced: list[bool] = []
        syncer = threading.Thread(target=lambda: synced.append(store.sync(DEADLINE_S)))
        syncer.start()
        time.sleep(0.3)  # (so that it waits on the worker stopped next)
        derive.busy_s = 1.0  # as if it had derived for a second
        derive.failures = 2  # and two of its refreshes had failed
        store.recycle_after_s = 1.0
        wait(lambda: store.recycle_seconds.count >= 1, "reopen")
        store.recycle_after_s = None
        assert store._derive is not derive
        with store.cursor() as cur:  # nothing derived: the backlog is still queued
            assert cur.execute("SELECT count(*) FROM derive_queue").fetchall()[0][0] == 30
        assert synced == []  # sync still waits: its worker stopped, the new one derives
        busy.clear()
        syncer.join(DEADLINE_S)
        assert synced == [True]
        with store.cursor() as cur:
            assert_derived_as_from_scratch(cur)
        assert store.refreshes.traces == 30
        assert store.derive_health()[3] == 2  # failed refreshes since the store opened
    finally:
        writer.close()
        store.close()


def test_a_reopen_waits_for_the_refresh_under_way_without_holding_commits(tmp_path) -> None:
    """While a refresh is under way (it holds the checkpoint lock) the reopen does not
    start: commits go on, no further refresh starts, and the store is opened again once
    the refresh has ended."""
    store = Store(str(tmp_path / "s.duckdb"), recycle_after_s=None)
    writer = Writer(store).start()
    first, second = tables(2, 3)
    try:
        writer.write("spans", first, timeout=DEADLINE_S)
        assert store.sync(DEADLINE_S)
        derive = store._derive
        assert derive is not None
        with store.checkpoint_lock:  # a refresh under way
            derive.busy_s, store.recycle_after_s = 1.0, 1.0
            time.sleep(1.5)  # (the writer tries at least once a second)
            assert store.recycle_seconds.count == 0
            writer.write("spans", second, timeout=DEADLINE_S)  # commits are not held
            assert store._recycle_due  # and no refresh starts after this one
        wait(lambda: store.recycle_seconds.count >= 1, "reopen once the refresh ended")
        store.recycle_after_s = None
        assert store.sync(DEADLINE_S)
        with store.cursor() as cur:
            assert_derived_as_from_scratch(cur)
            assert cur.execute("SELECT count(*) FROM span_threads").fetchall() == [(6,)]
    finally:
        writer.close()
        store.close()
