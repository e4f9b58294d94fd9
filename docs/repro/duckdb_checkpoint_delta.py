"""Minimal reproduction of DuckDB 2.0.1's fatal error

    INTERNAL Error: IndexEntry::RemoveFromIndex - partially deleted from the checkpoint delta

after which DuckDB invalidates the database (every later write fails until a restart).

The condition (src/storage/table/table_index_list.cpp, TryDeleteAll; art.cpp, DeleteKeys):
a checkpoint runs *concurrently* (an open transaction that inserted or deleted holds the
vacuum lock, so CHECKPOINT cannot take it and checkpoints beside it); during it,
1. a commit appends to a table with an ART index: the index gets an "added data during
   checkpoint" delta, and
2. that commit (or a later one in the same checkpoint) deletes rows that existed before
   the checkpoint, some of them with a NULL key: ART::DeleteKeys counts a NULL-key row
   as deleted, so the delete count is between 0 and the chunk size, the exception is
   raised, and IndexDataRemover::Flush turns it into a FatalException.

otel-threads met it when a derive transaction (DELETE ... WHERE trace_id IN (...), then
INSERT, one COMMIT on span_threads_mat, whose indexed thread_id is NULL for spans of no
thread) committed while the writer checkpointed. The store avoids it: DuckDB's automatic
checkpoint is off and the writer checkpoints only while it holds `Writer.checkpoint_lock`,
which derivation and retention hold while they write.

    python docs/repro/duckdb_checkpoint_delta.py [LOOPS] [--no-nulls] [--two-commits]
                                                 [--no-debug-sleep]

Exit status 1 when the fatal error happened. On 2.0.1: 30 failures in 30 loops, and 0 in
30 with --no-nulls (DuckDB 1.5.6 fails the same way, with an older message).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time

import duckdb

LOOPS = int(next((a for a in sys.argv[1:] if a.isdigit()), "1"))
NULLS = "--no-nulls" not in sys.argv
ONE_COMMIT = "--two-commits" not in sys.argv  # default: one derive-like transaction
DEBUG_SLEEP = "--no-debug-sleep" not in sys.argv  # else: a long checkpoint of real data


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # fails too once the database is invalidated
        con.cursor().execute("CHECKPOINT")


def once(path: str) -> str | None:
    for suffix in ("", ".wal", ".wal.checkpoint"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    con = duckdb.connect(path)
    con.execute("SET checkpoint_threshold = '1TB'")  # no automatic checkpoints
    if DEBUG_SLEEP:
        con.execute("SET debug_checkpoint_scan_sleep_ms = 300")  # a wider window
    con.execute("CREATE TABLE t (k INTEGER, v VARCHAR)")
    con.execute("CREATE INDEX t_v ON t (v)")
    key = "NULL" if NULLS else "'x' || i"
    con.execute(
        f"INSERT INTO t SELECT i, CASE WHEN i % 2 = 0 THEN {key} ELSE 'v' || i END "
        "FROM range(10) r(i)"
    )
    con.execute("CHECKPOINT")
    con.execute("CREATE TABLE u AS SELECT md5(1::VARCHAR) AS x")  # checkpointed after t
    if not DEBUG_SLEEP:  # about a second of checkpoint work instead
        for j in range(20):
            con.execute(
                f"INSERT INTO u SELECT md5((i + {j * 100_000})::VARCHAR) FROM range(100000) r(i)"
            )
    w = con.cursor()
    w.execute("BEGIN")
    if ONE_COMMIT:  # as otel_threads' derivation did: DELETE, INSERT, one COMMIT
        w.execute("DELETE FROM t WHERE k < 4")  # rows from before the checkpoint, 2 NULL keys
    w.execute("INSERT INTO t VALUES (1000, 'new')")  # an open writer holds the vacuum lock
    ckpt = threading.Thread(target=checkpoint, args=(con,))
    ckpt.start()  # so this checkpoint is a concurrent one
    time.sleep(0.15)
    error = None
    try:
        w.execute("COMMIT")  # an append during the checkpoint
        if not ONE_COMMIT:
            w.execute("DELETE FROM t WHERE k < 4")
    except duckdb.Error as exc:
        error = str(exc).splitlines()[0]
    ckpt.join()
    con.close()
    return error


def main() -> int:
    path = os.path.join(tempfile.mkdtemp(), "repro.duckdb")
    errors = [e for e in (once(path) for _ in range(LOOPS)) if e]
    if errors:
        print(errors[0])
    print(
        f"duckdb {duckdb.__version__}: {len(errors)} failures in {LOOPS} loops "
        f"(null keys={NULLS}, one commit={ONE_COMMIT}, debug sleep={DEBUG_SLEEP})"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
