"""`Checkpointing`: folding the write-ahead log into the file, and derivation making way
for it.

A mixin of `otel_threads.store.store.Store`. `checkpoint` runs on the writer's thread,
`yield_to_checkpoint` on derivation's; they read and set the store's ``_con``,
``_dirty``, ``path``, ``fault``, ``checkpoint_lock``, ``checkpoint_seconds``,
``_checkpoint_cond``, ``_checkpoint_due``, ``_recycle_due`` and ``_vacuumed_at``, and
call its ``_store_error``.

DuckDB 2.0.1 holds every scan that filters an indexed table (a WHERE, an index lookup)
while a checkpoint runs, unless a transaction begun before the newest commit is open
when it begins: then the checkpoint runs "concurrently", leaving out the vacuum (merging
the row groups rows were deleted from), and holds nobody
(docs/repro/duckdb_checkpoint_reads.py). So a checkpoint here begins a read transaction,
commits a number drawn from the sequence `checkpoint_seq` (migration 0023), and
checkpoints beside it. Every `VACUUM_EVERY_S` it then vacuums: it draws another number
(a checkpoint of an empty WAL does nothing) and checkpoints alone, a "full" checkpoint
with nothing left to write but the vacuum, which holds those reads while it runs; DuckDB
makes at most `VACUUM_TASKS` merges of row groups a table in it (the store sets
``max_vacuum_tasks``), so that stays short however much was deleted since the last.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

import duckdb

from otel_threads.store import turn_keys

__all__ = [
    "CHECKPOINT_YIELD_S",
    "VACUUM_EVERY_S",
    "VACUUM_TASKS",
    "Checkpointing",
    "checkpoint_settings",
]

_logger = logging.getLogger("otel_threads.store.writer")

#: Longest a refresh waits for a due checkpoint (`Store.yield_to_checkpoint`): the
#: writer tries one after every commit, and at least every second when idle.
CHECKPOINT_YIELD_S = 30.0
#: How often a checkpoint vacuums (and holds the reads that filter an indexed table while
#: it runs); the others leave the vacuum out. Derivation deletes the rows it replaces (a
#: thread's row of `threads_mat` at each refresh that touches the thread), the queue the
#: traces it derived, retention its threads' rows: a vacuum drops the row groups they
#: emptied and merges those they thinned.
VACUUM_EVERY_S = 60.0
#: Merges of row groups one vacuum makes a table at most (DuckDB's ``max_vacuum_tasks``,
#: 100 by default; it drops the row groups left empty whatever this is). Measured at
#: 34,000 spans/s (bench/soak.py): a vacuum alone took 0.59 s (median; 1.05 s as part of
#: a whole checkpoint) with 100, 0.23-0.33 s with 4, 6 ms with none; the file's bytes per
#: span at 10M spans did not grow.
VACUUM_TASKS = 4


def checkpoint_settings(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB's settings for the store's checkpoints and the reads beside them, on each
    connection the store opens."""
    # Checkpoints (folding the WAL into the file) run inside a commit and cost more than
    # the commit: the store checkpoints when the writer asks (idle, or a large WAL),
    # never while derivation writes.
    con.execute("SET checkpoint_threshold = '1TB'")
    # Reads run beside those checkpoints, and DuckDB holds a scan with a filter until one
    # that vacuums has ended. Late materialization (ORDER BY ... LIMIT 50 or less: the
    # rows found again by rowid) is one such filter, and the threads list's page is one
    # such query; without it a Top-N carries its rows whole
    # (docs/repro/duckdb_checkpoint_reads.py, otel_threads.query).
    con.execute("SET GLOBAL late_materialization_max_rows = 0")
    # The vacuum holds them while it runs: it merges a few row groups a table at a time
    # (a backlog in the next ones)
    con.execute(f"SET max_vacuum_tasks = {VACUUM_TASKS}")


class Checkpointing:
    """Checkpoints of the store, and the waits that let them run."""

    def needs_checkpoint(self) -> bool:
        """Whether the WAL has something to fold into the file."""
        return self._dirty or self.wal_bytes() > 0

    def checkpoint(self, due: bool = False, quiet: bool = False) -> bool:
        """Fold the WAL into the file, unless derivation (or retention) is writing now:
        then it stays dirty, for the next try. With ``due`` (the WAL is large), no new
        refresh starts until a try has gone through, so derivation running back to back
        cannot starve checkpoints (the WAL would grow without end). Whether it did;
        with ``quiet``, a checkpoint that DuckDB refuses for a writer beside it (what is
        left of the commits before, cleaned up as reads end) is not logged."""
        con = self._con
        if con is None:
            return False
        if due:
            with self._checkpoint_cond:
                self._checkpoint_due = True
        if not self.checkpoint_lock.acquire(blocking=False):
            return False
        try:
            started = time.perf_counter()
            # (no refresh runs: the next generation of turn keys, when the newest is full)
            turn_keys.roll(con)
            if not _beside_a_read(con):  # (refused beside it: whole, with the vacuum)
                con.execute("CHECKPOINT")
                self._vacuumed_at = time.monotonic()
            elif time.monotonic() - self._vacuumed_at >= VACUUM_EVERY_S and _vacuum(con):
                self._vacuumed_at = time.monotonic()
            self.checkpoint_seconds.observe(time.perf_counter() - started)
            self._dirty = False
            return True
        except duckdb.Error as exc:
            self._store_error(exc)
            if quiet and isinstance(exc, duckdb.TransactionException):
                return False
            if self.fault is None or self.fault.kind != "fatal":
                _logger.warning("checkpoint failed; retried when next idle", exc_info=True)
            return False
        finally:
            self.checkpoint_lock.release()
            with self._checkpoint_cond:
                self._checkpoint_due = False
                self._checkpoint_cond.notify_all()

    def yield_to_checkpoint(self, timeout: float = CHECKPOINT_YIELD_S) -> None:
        """Wait (at most ``timeout``) while a checkpoint (or a reopen) is due;
        derivation calls it before each refresh."""
        with self._checkpoint_cond:
            self._checkpoint_cond.wait_for(
                lambda: not (self._checkpoint_due or self._recycle_due), timeout
            )

    def wal_bytes(self) -> int:
        """The size of the file's write-ahead log (0 when there is none)."""
        try:
            return os.path.getsize(f"{self.path}.wal")
        except OSError:
            return 0


def _beside_a_read(con: duckdb.DuckDBPyConnection) -> bool:
    """Checkpoint ``con``'s file concurrently: beside a read transaction begun before a
    commit (a number drawn from `checkpoint_seq`). Whether it did; if not (DuckDB refuses
    a checkpoint beside a transaction begun before a commit that changed the catalog or
    upserted, whose cleanup waits for it), the caller checkpoints without it."""
    try:
        read = con.cursor()
    except duckdb.Error:  # (the file failed: the caller's checkpoint says how)
        return False
    try:
        try:
            read.execute("BEGIN TRANSACTION READ ONLY")
            read.execute("SELECT 1 FROM spans_raw LIMIT 0").fetchall()  # (begun on the file)
            con.execute("SELECT nextval('checkpoint_seq')").fetchall()
        except duckdb.Error:  # (a file without the sequence, or failing: the caller's says)
            return False
        con.execute("CHECKPOINT")
        return True
    except duckdb.TransactionException:
        return False
    finally:
        with contextlib.suppress(duckdb.Error):
            read.close()


def _vacuum(con: duckdb.DuckDBPyConnection) -> bool:
    """Vacuum ``con``'s file just after a checkpoint beside a read: a checkpoint again, of
    a WAL that holds a number alone (DuckDB skips one of an empty WAL), with nothing to
    write but the vacuum. Whether it ran (DuckDB refuses it while another connection
    commits: the next one vacuums). (A read of the API's begun before that number makes
    it "concurrent" too, without the vacuum: a minute later, the next one vacuums.)"""
    con.execute("SELECT nextval('checkpoint_seq')").fetchall()
    try:
        con.execute("CHECKPOINT")
    except duckdb.TransactionException:
        return False
    return True
