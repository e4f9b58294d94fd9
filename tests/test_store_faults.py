"""The store file on a bad day, under a running collector (a real process): a full disk
that makes DuckDB's checkpoint a fatal error, the file deleted or replaced, made
read-only, truncated before start.

Each time the collector stays up, refuses exports while it cannot commit durably
(503: never acknowledged, so the exporter retries), logs one line, and recovers by
itself once the cause is gone; every export it acknowledged is in the file at the end,
and derived. The full disk is a small tmpfs; read-only is the immutable attribute on an
ext4 image mounted through a loop device (root ignores permission bits). Both need
root: without it those tests skip, saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_collector_process import Running, http, post_traces, span_batches, span_id, stored

from otel_threads.otlp.decode import decode_traces_protobuf
from otel_threads.store import connect
from otel_threads.store.writer import Writer

# the process harness of test_collector_process: `collectors` starts real collectors
pytest_plugins = ["test_collector_process"]

DEADLINE_S = 60.0
LEAVE = int(os.environ.get("LEAVE", 1 << 20))


def _mount(args: list[str], target: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system for the fault needs root")
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a file system here: {done.stderr.strip()}")


def _unmount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


@contextlib.contextmanager
def tmpfs(target: Path, size: str) -> Iterator[Path]:
    _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs"], target)
    try:
        yield target
    finally:
        _unmount(target)


@contextlib.contextmanager
def ext4(target: Path, image: Path, size_mb: int = 32) -> Iterator[Path]:
    """An ext4 file system in ``image``, mounted at ``target`` through a loop device."""
    if shutil.which("mkfs.ext4") is None or shutil.which("chattr") is None:
        pytest.skip("needs mkfs.ext4 and chattr (e2fsprogs)")
    with image.open("wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    _mount(["-o", "loop", str(image)], target)
    try:
        yield target
    finally:
        for path in target.glob("*"):
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        _unmount(target)


class Exports:
    """Exports turns one by one over OTLP/HTTP as an exporter does: a refused turn is sent
    again until acknowledged; keeps the ids of what was acknowledged."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.batches = iter(span_batches(200, 5))
        self.pending = next(self.batches)
        self.acked: list[str] = []
        self.refused = 0

    def one(self) -> int:
        status, _, body = post_traces(self.running, encode_spans(self.pending).SerializeToString())
        if status == 200:
            self.acked += [span_id(s) for s in self.pending]
            self.pending = next(self.batches)
        else:
            assert status == 503, (status, body)
            self.refused += 1
        return status

    def until(self, status: int, what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while self.one() != status:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no export answered {status} ({what}) within "
                    f"{DEADLINE_S}s: {self.running.log.read_text()}"
                )
            time.sleep(0.1)


def health(running: Running) -> tuple[int, dict]:
    status, _, body = http(f"{running.note['api']}/healthz")
    return status, json.loads(body)


def wait_health(running: Running, status: int, what: str) -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        got, body = health(running)
        if got == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(
                f"/healthz never answered {status} ({what}), last {got} "
                f"{body}: {running.log.read_text()}"
            )
        time.sleep(0.05)


def finish(running: Running, exports: Exports) -> None:
    """Stop the collector; every acknowledged span is in the file, and derived."""
    assert running.stop() == 0, running.log.read_text()
    kept = stored(running.db)
    missing = [s for s in exports.acked if s not in kept]
    assert not missing, f"{len(missing)} acknowledged spans lost: {running.log.read_text()}"
    with connect(running.db, read_only=True) as con:
        threads = {r[0] for r in con.execute("SELECT thread_id FROM threads").fetchall()}
        queued = con.execute("SELECT count(*) FROM derive_queue").fetchone()[0]
    assert threads == {"thread-0", "thread-1", "thread-2"}
    assert queued == 0


def log_count(running: Running, text: str) -> int:
    return sum(text in line for line in running.log_lines())


def fill(directory: Path, leave: int) -> Path:
    """A file that takes all the space of ``directory``'s file system but ``leave`` bytes."""
    filler = directory / "filler"
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as f:
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(0, free - leave))
            f.flush()
            os.fsync(f.fileno())
    return filler


def test_a_fatal_error_on_a_full_disk_heals_once_there_is_space(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "fs", "24m") as fs:
        running = collectors(db=fs / "x.duckdb")
        exports = Exports(running)
        # Room for the first commits in the WAL, none for the checkpoint that folds them
        # into the file (a new store's first one writes megabytes): DuckDB invalidates
        # the database ("FATAL Error: Failed to create checkpoint ... No space left").
        filler = fill(fs, leave=LEAVE)
        for _ in range(3):
            assert exports.one() == 200
        deadline = time.monotonic() + DEADLINE_S  # the checkpoint comes once idle
        while not log_count(running, "DuckDB stopped the store"):
            assert time.monotonic() < deadline, running.log.read_text()
            time.sleep(0.1)
        assert health(running) == (503, {"status": "unavailable", "store": "fatal"})
        assert exports.one() == 503
        time.sleep(2.5)  # tries to open it again meanwhile: the disk is still full
        assert health(running) == (503, {"status": "unavailable", "store": "fatal"})
        assert exports.one() == 503
        filler.unlink()
        exports.until(200, "space is back")
        assert wait_health(running, 200, "healed") == {"status": "ok"}
        for _ in range(5):
            assert exports.one() == 200
        assert log_count(running, "DuckDB stopped the store") == 1
        assert log_count(running, "commits again") == 1
        finish(running, exports)


def test_a_store_deleted_under_the_collector_is_written_back(
    collectors: Callable[..., Running],
) -> None:
    running = collectors()
    exports = Exports(running)
    for _ in range(20):
        assert exports.one() == 200
    for path in (running.db, Path(f"{running.db}.wal")):
        path.unlink(missing_ok=True)
    deadline = time.monotonic() + DEADLINE_S
    while not running.db.exists():
        assert time.monotonic() < deadline, running.log.read_text()
        time.sleep(0.05)
    exports.until(200, "written back")
    for _ in range(10):
        assert exports.one() == 200
    assert log_count(running, "was deleted while the collector ran") == 1
    assert log_count(running, "wrote the store back to") == 1
    finish(running, exports)


def test_a_store_replaced_under_the_collector_refuses_exports_until_it_is_gone(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    running = collectors()
    exports = Exports(running)
    for _ in range(10):
        assert exports.one() == 200
    other = tmp_path / "other.duckdb"
    with connect(other) as con:
        con.execute("CHECKPOINT")
    os.replace(other, running.db)
    assert wait_health(running, 503, "replaced") == {"status": "unavailable", "store": "replaced"}
    assert exports.one() == 503
    running.db.unlink()  # the cause goes away: the collector writes back what it holds
    wait_health(running, 200, "written back")
    exports.until(200, "written back")
    assert log_count(running, "was replaced by another file") == 1
    finish(running, exports)


def test_a_store_made_read_only_refuses_exports_until_writable(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    with ext4(tmp_path / "fs", tmp_path / "fs.img") as fs:
        running = collectors(db=fs / "x.duckdb")
        exports = Exports(running)
        for _ in range(10):
            assert exports.one() == 200
        subprocess.run(["chattr", "+i", str(running.db)], check=True)
        body = wait_health(running, 503, "read-only")
        assert body["store"] in ("read-only", "fatal"), body
        assert exports.one() == 503
        subprocess.run(["chattr", "-i", str(running.db)], check=True)
        wait_health(running, 200, "writable again")
        exports.until(200, "writable again")
        finish(running, exports)


def test_a_store_that_cannot_open_at_start_is_opened_once_it_can(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    first = collectors()
    exports = Exports(first)
    for _ in range(10):
        assert exports.one() == 200
    assert first.stop() == 0
    good = tmp_path / "good.duckdb"
    shutil.copy(first.db, good)
    with first.db.open("r+b") as f:
        f.truncate(first.db.stat().st_size // 2)

    running = collectors()  # same file, truncated: it stays up, refusing exports
    exports.running = running
    assert health(running) == (503, {"status": "unavailable", "store": "open"})
    assert exports.one() == 503
    assert log_count(running, "cannot open the store") == 1
    assert str(running.db) not in json.dumps(health(running)[1])
    os.replace(good, running.db)
    wait_health(running, 200, "opened")
    exports.until(200, "opened")
    assert log_count(running, "cannot open the store") == 1
    finish(running, exports)


def _wal_bytes(db: Path) -> int:
    try:
        return Path(f"{db}.wal").stat().st_size
    except FileNotFoundError:
        return 0


def test_no_checkpoint_runs_while_derivation_writes(tmp_path: Path) -> None:
    """DuckDB 2.0 can fail a derivation's COMMIT (deletes from indexed tables) when
    another connection checkpoints meanwhile, and invalidate the database: the writer
    checkpoints only while no derivation (nor retention) holds `checkpoint_lock`."""
    db = tmp_path / "x.duckdb"
    writer = Writer(str(db), idle_checkpoint_s=0.05).start()
    try:
        batches = [
            decode_traces_protobuf(encode_spans(b).SerializeToString()).table
            for b in span_batches(4, 5)
        ]
        writer.write("spans", batches[0])
        assert writer.store.sync(30)
        wait(lambda: _wal_bytes(db) == 0, "the idle checkpoint")
        with writer.store.checkpoint_lock:  # as a derivation does while it writes
            writer.write("spans", batches[1])
            for _ in range(10):  # many idle periods pass: no checkpoint
                time.sleep(0.05)
                assert _wal_bytes(db) > 0
        wait(lambda: _wal_bytes(db) == 0, "the checkpoint once the lock is free")
    finally:
        writer.close()


def test_derivation_back_to_back_does_not_starve_a_due_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under sustained ingest derivation refreshes back to back, holding
    `checkpoint_lock` nearly all the time: a checkpoint that is due (a large WAL) must
    still run, or the WAL grows without end (seen: 1.7 GB in ten minutes)."""
    import otel_threads.store.writer as writer_module
    from otel_threads.store.derive import Deriver

    monkeypatch.setattr(writer_module, "WAL_CHECKPOINT_BYTES", 1)
    busy = threading.Event()
    refreshes = [0]

    def refresh(self, *args, **kwargs) -> int:  # as a refresh of a long queue: no gap
        if not busy.is_set():
            return 0
        refreshes[0] += 1
        time.sleep(0.05)
        return 1

    monkeypatch.setattr(Deriver, "refresh", refresh)
    db = tmp_path / "x.duckdb"
    # never idle (so only the due checkpoint after a commit can fold the WAL)
    writer = Writer(str(db), idle_checkpoint_s=3600).start()
    try:
        batches = [
            decode_traces_protobuf(encode_spans(b).SerializeToString()).table
            for b in span_batches(30, 5)
        ]
        busy.set()
        writer.write("spans", batches[0])  # derivation now refreshes without a pause
        wait(lambda: refreshes[0] >= 3, "derivation to run back to back")
        # each commit finds a checkpoint due; it runs after the commit is acknowledged
        folded = False
        for batch in batches[1:]:
            writer.write("spans", batch)
            settle = time.monotonic() + 1.0
            while not (folded := _wal_bytes(db) == 0) and time.monotonic() < settle:
                time.sleep(0.02)
            if folded:
                break
        assert folded, "no due checkpoint ran while derivation refreshed back to back"
        at = refreshes[0]
        wait(lambda: refreshes[0] > at, "derivation to go on after the checkpoint")
    finally:
        busy.clear()
        writer.close()


def test_an_idle_writer_folds_a_large_wal_while_derivation_works_off_a_backlog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest stopped, derivation works off its backlog back to back, writing: the WAL
    it grows must still be folded when large (seen: 1.4 GB after ten minutes of
    draining, with DuckDB spilling to disk), not only after a commit of the writer's."""
    import otel_threads.store.writer as writer_module
    from otel_threads.store.derive import Deriver
    from otel_threads.store.store import Store

    monkeypatch.setattr(writer_module, "WAL_CHECKPOINT_BYTES", 1)
    draining = threading.Event()
    refreshes = [0]

    def refresh(self, *args, **kwargs) -> int:  # a long backlog: no gap, and writes
        if not draining.is_set():
            return 0
        refreshes[0] += 1
        self.con.execute("INSERT INTO derive_builds (version) VALUES (0)")
        time.sleep(0.05)
        return 1

    folds = []
    checkpoint = Store.checkpoint

    def counted(self, due: bool = False) -> None:
        before = self.wal_bytes()
        checkpoint(self, due)
        if before > 0 and self.wal_bytes() < before:
            folds.append(due)

    monkeypatch.setattr(Deriver, "refresh", refresh)
    monkeypatch.setattr(Store, "checkpoint", counted)
    db = tmp_path / "x.duckdb"
    writer = Writer(str(db), idle_checkpoint_s=0.05).start()
    try:
        (spans,) = span_batches(1, 5)
        batch = decode_traces_protobuf(encode_spans(spans).SerializeToString()).table
        draining.set()
        writer.write("spans", batch)  # the last commit; derivation then never pauses
        wait(lambda: refreshes[0] >= 3, "derivation to run back to back")
        at = len(folds)
        wait(lambda: len(folds) >= at + 2, "the WAL folded while the writer is idle")
    finally:
        draining.clear()
        writer.close()


def wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S}s"
        time.sleep(0.02)


def test_an_out_of_memory_inside_a_commit_is_not_hidden_by_the_aborted_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's out-of-memory aborts the transaction, so cleaning up after the failed
    INSERT (unregistering the batch) fails too: that second error must not replace the
    first, or the writer takes it for bad data and refuses the batch instead of trying
    it again (as it did under load: test_derive_bounds' set-aside test, once)."""
    from otel_threads.store import committing

    real_insert, calls = committing.insert_batch, []

    class Aborting:  # (its first statement runs out of memory, aborting the transaction)
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def execute(self, *args, **kwargs):
            with contextlib.suppress(duckdb.Error):
                self._con.execute("SELECT error('aborts the transaction')")
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")

        def __getattr__(self, name: str):
            return getattr(self._con, name)

    def insert_batch(con, *args, **kwargs):
        calls.append(1)
        return real_insert(Aborting(con) if len(calls) == 1 else con, *args, **kwargs)

    monkeypatch.setattr(committing, "insert_batch", insert_batch)
    writer = Writer(str(tmp_path / "x.duckdb")).start()
    try:
        batch = decode_traces_protobuf(
            encode_spans(span_batches(1, 3)[0]).SerializeToString()
        ).table
        assert writer.submit("spans", batch).result(DEADLINE_S).rows == 3
        assert len(calls) == 2 and writer.store.fault is None
    finally:
        writer.close()


def test_a_commit_out_of_memory_waits_for_derivation_and_goes_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest comes first: a commit that runs out of memory while derivation holds it is
    tried again once derivation lets go (`checkpoint_lock`), not refused as a fault."""
    writer = Writer(str(tmp_path / "x.duckdb")).start()
    try:
        batch = decode_traces_protobuf(
            encode_spans(span_batches(1, 3)[0]).SerializeToString()
        ).table
        real_commit, calls, test_holds = writer._commit, [], [True]

        def commit(items: list) -> None:  # (does the test hold the lock, is it held)
            calls.append((test_holds[0], writer.store.checkpoint_lock.locked()))
            if len(calls) == 1:
                raise duckdb.OutOfMemoryException("Out of Memory Error: as derivation held it")
            real_commit(items)

        monkeypatch.setattr(writer, "_commit", commit)
        with writer.store.checkpoint_lock:  # as a derivation does while it runs
            future = writer.submit("spans", batch)
            wait(lambda: len(calls) == 1, "the first commit")
            time.sleep(0.2)
            assert not future.done()  # waits for the lock, not refused
            test_holds[0] = False
        assert future.result(DEADLINE_S).rows == 3
        # tried again once the test let go, with the writer holding the lock
        assert calls == [(True, True), (False, True)] and writer.store.fault is None
    finally:
        writer.close()


def test_a_close_with_a_checkpoint_due_derives_what_is_left_without_waiting_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A due checkpoint (a large WAL) that met derivation's refresh stays due; no refresh
    starts until it has run. When the writer stops then, no checkpoint comes before the
    store's own at close: the refreshes that work off the queue at close must not wait
    for one (each waited `CHECKPOINT_YIELD_S`, 30 s: a collector stopped under load took
    minutes to exit)."""
    from otel_threads.store.store import Store

    monkeypatch.setattr(Store.yield_to_checkpoint, "__defaults__", (3600.0,))
    db = tmp_path / "x.duckdb"
    # (the writer folds no WAL while idle here: only the due checkpoint could end the wait)
    writer = Writer(str(db), idle_checkpoint_s=3600.0).start()
    store = writer.store
    first, second = span_batches(2, 5)
    with store.checkpoint_lock:  # a refresh under way
        writer.write("spans", decode_traces_protobuf(encode_spans(first).SerializeToString()).table)
        store.checkpoint(due=True)  # the WAL is large, the refresh holds the lock: due
        writer.write(
            "spans", decode_traces_protobuf(encode_spans(second).SerializeToString()).table
        )
    closer = threading.Thread(target=writer.close, daemon=True)
    closer.start()
    wait(lambda: not closer.is_alive(), "close while a checkpoint was due")
    con = connect(str(db))
    try:
        assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM span_threads_mat").fetchall()[0][0] == 10
    finally:
        con.close()
