"""DuckDB's memory limit follows the store's indexes (otel_threads.store.memory_budget):
with random keys they take about their whole size in memory between two checkpoints,
and DuckDB cannot spill them, so under a fixed limit a growing store stops committing."""

from __future__ import annotations

import logging
import os
import time

import duckdb
import pyarrow as pa
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_collector_process import span_batches

from otel_threads.collector.config import Config, ConfigError
from otel_threads.otlp.decode import decode_traces_protobuf
from otel_threads.store import trace_numbers
from otel_threads.store.errors import Overloaded, StoreUnavailable
from otel_threads.store.memory_budget import (
    DEFAULT_MEMORY_LIMIT,
    STEP,
    MemoryBudget,
    machine_memory,
    out_of_memory,
)
from otel_threads.store.schema import connect
from otel_threads.store.store import Store
from otel_threads.store.writer import Writer

MIB = 1 << 20
DEADLINE_S = 90.0


# -- the budget alone ------------------------------------------------------------------


def test_auto_raises_the_limit_once_the_indexes_hold_half_of_it() -> None:
    budget = MemoryBudget(64 * MIB, cap=1024 * MIB)
    assert not budget.observe(32 * MIB)  # half: not more than half
    assert budget.limit == 64 * MIB
    assert budget.observe(40 * MIB)
    assert budget.limit == 128 * MIB  # 2.5 x 40 MiB, in whole steps
    assert budget.limit % STEP == 0
    assert not budget.observe(50 * MIB)  # under half of the new limit
    assert budget.index_bytes == 50 * MIB


def test_auto_stops_at_its_cap_and_says_so_once(caplog) -> None:
    budget = MemoryBudget(64 * MIB, cap=96 * MIB)
    with caplog.at_level(logging.WARNING, logger="otel_threads.store.writer"):
        assert budget.observe(40 * MIB)
        assert budget.limit == 96 * MIB
        assert not budget.observe(60 * MIB)
        assert not budget.observe(70 * MIB)
        assert not budget.out_of_memory()
    assert budget.limit == 96 * MIB
    capped = [r for r in caplog.records if "at its cap" in r.getMessage()]
    assert len(capped) == 1, [r.getMessage() for r in caplog.records]
    assert "--retention" in capped[0].getMessage()


def test_a_limit_set_by_hand_is_kept_and_a_warning_says_the_indexes_need_more(caplog) -> None:
    budget = MemoryBudget(64 * MIB, auto=False, cap=1024 * MIB)
    with caplog.at_level(logging.WARNING, logger="otel_threads.store.writer"):
        assert not budget.observe(40 * MIB)
        assert not budget.observe(60 * MIB)
        assert not budget.out_of_memory()
    assert budget.limit == 64 * MIB
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "--memory-limit" in warned[0], warned


def test_a_fatal_out_of_memory_raises_the_next_connections_limit() -> None:
    budget = MemoryBudget(64 * MIB, cap=1024 * MIB)
    assert budget.out_of_memory()
    assert budget.limit == 128 * MIB  # 1.5 x 64 MiB, in whole steps


def test_the_cap_follows_a_containers_memory_limit(tmp_path) -> None:
    """In a container (cgroup v2 or v1) the memory the limit may grow to is the
    container's, when lower than the host's; "max" (v2, no limit) leaves the host's."""
    host = machine_memory(())
    assert host > 0
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v2.write_text("max\n")
    v1.write_text(f"{512 * MIB}\n")
    assert machine_memory((str(v2),)) == host
    assert machine_memory((str(tmp_path / "none"), str(v1))) == min(host, 512 * MIB)
    v2.write_text(f"{256 * MIB}\n")
    assert machine_memory((str(v2), str(v1))) == min(host, 256 * MIB)
    v2.write_text(f"{host * 4}\n")  # (v1's "no limit" is a huge number)
    assert machine_memory((str(v2),)) == host


def test_memory_limit_setting_takes_auto_or_a_size() -> None:
    assert Config.load({}, env={}).memory_limit is None  # auto, the default
    assert Config.load({"memory_limit": "auto"}, env={}).memory_limit is None
    assert Config.load({"memory_limit": "1GiB"}, env={}).memory_limit == 1 << 30
    assert Config.load({}, env={"OTEL_THREADS_MEMORY_LIMIT": "512MiB"}).memory_limit == 512 * MIB
    with pytest.raises(ConfigError, match="--memory-limit"):
        Config.load({"memory_limit": "lots"}, env={})
    assert DEFAULT_MEMORY_LIMIT == 512 * MIB


# -- a real store whose index outgrows the limit ----------------------------------------

#: Stored spans of distinct random traces: the index of their numbers by trace id
#: (trace_numbers', the one index by random keys: otel_threads.store.trace_numbers)
#: takes ~21 MiB once a thousand new random keys went in (measured), more than the
#: limits below.
SEEDED = 300_000
BASE = 16 * MIB


@pytest.fixture(autouse=True)
def _one_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeded traces and the new ones in one generation of trace numbers: the index
    the writer adds to is the one that outgrows the limit (with generations of the
    default size it stays small: tests/test_trace_numbers.py)."""
    monkeypatch.setattr(trace_numbers, "GENERATION", 1 << 40)


def _seeded(path: str) -> None:
    con = connect(path, derive_now=False)
    # (numbered below zero: the sequence gives the new traces theirs from 1)
    con.execute(
        f"INSERT INTO trace_numbers_0 SELECT md5(i::VARCHAR), -i FROM range(1, {SEEDED + 1}) t(i)"
    )
    con.execute(
        "INSERT INTO spans_raw (trace_id, span_id, start_time_unix_nano, ingest_seq, "
        "received_at, trace_n) SELECT md5(i::VARCHAR), substr(md5((-i)::VARCHAR), 1, 16), "
        f"1700000000000000000 + i, i, now(), -i FROM range(1, {SEEDED + 1}) t(i)"
    )
    con.execute("CHECKPOINT")
    con.close()


def _random_batches(n: int, size: int) -> list[pa.Table]:
    """``n`` decoded batches of ``size`` spans, each span of a trace of its own with a
    random id (new keys all over the index, as producers' ids land)."""
    (template,) = [
        decode_traces_protobuf(encode_spans(b).SerializeToString()).table
        for b in span_batches(1, size)
    ]
    out = []
    for _ in range(n):
        table = template
        for name, length in (("trace_id", 16), ("span_id", 8)):
            ids = pa.array([os.urandom(length).hex() for _ in range(size)], pa.string())
            table = table.set_column(table.schema.get_field_index(name), name, ids)
        out.append(table)
    return out


def _send(writer: Writer, batches: list[pa.Table], deadline_s: float) -> tuple[int, list[str]]:
    """Each batch until committed, retried as exporters retry; (spans committed, why the
    refusals were), stopping at the deadline."""
    deadline = time.monotonic() + deadline_s
    sent, refusals = 0, []
    for table in batches:
        while True:
            try:
                writer.write("spans", table, timeout=30)
                sent += table.num_rows
                break
            except (StoreUnavailable, Overloaded, duckdb.Error) as exc:
                refusals.append(str(exc))
                if time.monotonic() > deadline:
                    return sent, refusals
                time.sleep(0.1)
    return sent, refusals


def test_auto_limit_keeps_a_store_committing_as_its_index_outgrows_it(tmp_path) -> None:
    """A store whose index by trace id (trace_numbers') needs more than DuckDB's limit:
    with ``auto`` the limit is raised (the file opened again to take it) and every batch
    commits, stored once; the connection has the new limit; and derivation, out of
    memory too, sets no trace aside."""
    path = str(tmp_path / "s.duckdb")
    _seeded(path)
    budget = MemoryBudget(BASE, cap=1024 * MIB)
    store = Store(path, memory_budget=budget)
    writer = Writer(store).start()
    try:
        batches = _random_batches(30, 200)
        sent, _ = _send(writer, batches, DEADLINE_S)
        assert sent == 30 * 200
        assert budget.limit > BASE
        deadline = time.monotonic() + DEADLINE_S
        while True:  # a raise takes effect at the next opening of the file
            with store.cursor() as cur:
                setting = cur.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
                stored = cur.execute("SELECT count(*) FROM spans_raw").fetchall()[0][0]
            if setting != f"{BASE / MIB:.1f} MiB":
                break
            writer.write("spans", _random_batches(1, 10)[0])
            sent += 10
            assert time.monotonic() < deadline, "the store never opened with the new limit"
        assert stored == SEEDED + sent
        # derivation out of memory under auto raises the limit too: no trace set aside
        assert store.sync(DEADLINE_S), "derivation did not finish"
        _, errors_now, set_aside, _ = store.derive_health()
        assert (errors_now, set_aside) == (0, 0)
    finally:
        writer.close()
        store.close()


def test_the_limit_is_raised_before_the_index_needs_it(tmp_path) -> None:
    """Under a limit the index fits in but takes over half of: measured after a commit,
    the budget raises the limit, and the store opens its file again to take it."""
    path = str(tmp_path / "s.duckdb")
    _seeded(path)
    budget = MemoryBudget(40 * MIB, cap=1024 * MIB)
    store = Store(path, memory_budget=budget).open()
    try:
        con = store.con
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == [("40.0 MiB",)]
        store.sample_index_memory()
        assert budget.limit == 40 * MIB  # nothing inserted: the index is not in memory
        assert not store.recycle_if_due()
        con.execute(  # (as a commit numbers random new traces)
            "INSERT INTO trace_numbers_0 SELECT md5(random()::VARCHAR), nextval('trace_n_seq') "
            "FROM range(3000)"
        )
        store._sampled_at = 0.0  # (measured at most every SAMPLE_S: now)
        store.sample_index_memory()
        assert budget.index_bytes > 20 * MIB, budget.index_bytes
        assert budget.limit >= 2.5 * budget.index_bytes
        assert store.recycle_if_due()
        assert store.con is not con
        setting = store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        assert setting == f"{budget.limit / MIB:.1f} MiB"
        assert store.con.execute("SELECT count(*) FROM trace_numbers").fetchall() == [
            (SEEDED + 3000,)
        ]
        assert not store.recycle_if_due()  # once
    finally:
        store.close()


def test_the_same_store_under_a_limit_set_by_hand_stops_committing(tmp_path, caplog) -> None:
    """The control: the same store and batches with the limit fixed at the same size
    refuse exports, DuckDB out of memory for the index (the log says so)."""
    path = str(tmp_path / "s.duckdb")
    _seeded(path)
    budget = MemoryBudget(BASE, auto=False)
    store = Store(path, memory_budget=budget)
    writer = Writer(store).start()
    try:
        with caplog.at_level(logging.ERROR, logger="otel_threads.store.writer"):
            sent, refusals = _send(writer, _random_batches(30, 200), 10.0)
        assert sent < 30 * 200
        assert refusals
        assert any(out_of_memory(r.getMessage()) for r in caplog.records)
        assert budget.limit == BASE
    finally:
        writer.close()
        store.close()


def test_derivation_out_of_memory_for_the_indexes_sets_no_trace_aside(tmp_path) -> None:
    """Under a limit the indexes hold most of, derivation runs out of memory through no
    trace's fault: every trace stays queued for the next try (none set aside), and every
    batch commits."""
    path = str(tmp_path / "s.duckdb")
    _seeded(path)
    store = Store(path, memory_budget=MemoryBudget(40 * MIB, auto=False))
    writer = Writer(store).start()
    try:
        # (a commit beside a refresh may run out of memory too: retried, as exporters do)
        sent, _ = _send(writer, _random_batches(20, 200), DEADLINE_S)
        assert sent == 20 * 200
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert time.monotonic() < deadline, "derivation never tried"
            try:
                queued, errors_now, set_aside, failures = store.derive_health()
            except duckdb.OutOfMemoryException:  # (this read is under the same limit: again)
                time.sleep(0.1)
                continue
            if failures or not queued:
                break
            time.sleep(0.1)
        assert failures > 0, "derivation fitted in memory: this shows nothing"
        assert (errors_now, set_aside) == (0, 0)
        assert queued > 0
    finally:
        writer.close()
        store.close()
