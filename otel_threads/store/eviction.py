"""Taking threads out of a store that keeps some threads and not others: a ClickHouse
derive worker's own store (otel_threads.clickhouse.worker), which keeps the threads it
works on and lets idle ones go.

`evict_threads` deletes the rows of threads that stand alone, so what stays derives as
it did: their traces are theirs alone, and no link joins them to another thread.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from otel_threads.store.sqlfiles import DERIVED
from otel_threads.store.trace_numbers import generations
from otel_threads.store.turn_keys import TURN_KEYS

__all__ = ["evict_threads"]

#: Candidate threads (TEMP ``_cand``) that cannot leave the store alone: a trace of theirs
#: with spans in another thread (or none), a link between a turn of theirs and a turn of
#: another thread or an unknown one (either way), a trace of theirs set aside.
_TIED = """
WITH cand_traces AS (
    SELECT DISTINCT trace_id, thread_id FROM span_threads_mat
    WHERE thread_id IN (SELECT v FROM temp._cand)
),
links AS (
    SELECT m.thread_id AS a, t.thread_id AS b
    FROM spans_raw r
    JOIN span_threads_mat m ON m.trace_id = r.trace_id AND m.span_id = r.span_id
    LEFT JOIN turns_mat t ON t.turn_id = r.previous_turn_id
    WHERE r.previous_turn_id IS NOT NULL
)
SELECT c.thread_id FROM cand_traces c
JOIN span_threads_mat m ON m.trace_id = c.trace_id
WHERE m.thread_id IS DISTINCT FROM c.thread_id
UNION
SELECT a FROM links WHERE a IS DISTINCT FROM b
UNION
SELECT b FROM links WHERE a IS DISTINCT FROM b
UNION
SELECT c.thread_id FROM cand_traces c JOIN derive_errors e ON e.trace_id = c.trace_id
UNION
SELECT thread_id FROM derive_errors
"""

#: What `evict_threads` deletes, by the threads' traces and by the threads.
_BY_TRACE = (
    "spans_raw",
    "logs",
    "derive_queue",
    "linked_turns",
    "rejected_turns",
    "annotation_records",
    *(table for table, _, key in DERIVED if key == "trace_id"),
)
_BY_THREAD = (
    "thread_versions",
    "evaluation_runs",
    *(table for table, _, key in DERIVED if key == "thread_id"),
)


def evict_threads(con: duckdb.DuckDBPyConnection, threads: list[str]) -> set[str]:
    """Take ``threads`` out of the store, those that stand alone: every span of their
    traces is theirs, no link joins them to another thread (a turn naming a turn of
    another thread, or one not known), nothing of theirs was set aside. Returns those
    taken out. What is left derives as before: nothing of it reads them."""
    con.register("__cand", pa.table({"v": pa.array(threads, pa.string())}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _cand AS SELECT v FROM __cand")
    finally:
        con.unregister("__cand")
    try:
        tied = {r[0] for r in con.execute(_TIED).fetchall() if r[0] is not None}
        out = sorted(set(threads) - tied)
        if not out:
            return set()
        con.execute("CREATE OR REPLACE TEMP TABLE _cand AS SELECT unnest(?::VARCHAR[]) AS v", [out])
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _gone AS SELECT DISTINCT trace_id AS v "
            "FROM span_threads_mat WHERE thread_id IN (SELECT v FROM temp._cand)"
        )
        con.execute("BEGIN TRANSACTION")
        try:
            for table in (*_BY_TRACE, *generations(con)):  # (and the traces' numbers)
                con.execute(f"DELETE FROM {table} WHERE trace_id IN (SELECT v FROM temp._gone)")
            for table in (*_BY_THREAD, *TURN_KEYS.tables(con)):  # (and their turn keys)
                con.execute(f"DELETE FROM {table} WHERE thread_id IN (SELECT v FROM temp._cand)")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return set(out)
    finally:
        con.execute("DROP TABLE IF EXISTS temp._cand")
        con.execute("DROP TABLE IF EXISTS temp._gone")
