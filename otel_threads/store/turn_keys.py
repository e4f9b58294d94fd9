"""Turn keys: the (thread, turn) pairs ``turns_mat`` holds, looked up by turn id.

A refresh looks up which of the turns its traces touch were derived before (their spans
in other traces join the refresh: otel_threads.store.thread_rows, `_reached`). Turn ids
are span ids, random: ``turns_mat``'s index by turn id (migration 0007) was written about
whole at every checkpoint, more than all the other tables together on a store of 5.1M
spans (63.3 MiB a checkpoint against 2.8 without it), a cost that grew with the turns
stored (docs/storage.md, "Indexes and random ids"). So the pairs are kept in generations
(migration 0025): tables ``turn_keys_0``, ``turn_keys_1``, ... indexed by turn id, read
together through the view ``turn_keys``; a refresh adds its new pairs to the newest, and
the store begins the next at a checkpoint once it holds `GENERATION` (`roll`: a catalog
change, made while no refresh runs).

The pairs are a superset of ``turns_mat``'s: a refresh adds each pair it writes to
``turns_mat`` that the lookup did not find, and nothing deletes a pair but retention (the
thread's), a store that lets threads go (otel_threads.store.eviction) and a rebuild of
``turns_mat`` (`empty`: every turn would be found, and sent its refresh looking for
spans derived before). A pair
``turns_mat`` no longer holds (a turn refused, or that took another thread along its link)
only makes the refresh look for the turn's spans in ``span_threads_mat``, where it finds
none; exact answers (otel_threads.store.links) read ``turns_mat`` itself.
"""

from __future__ import annotations

import duckdb

from otel_threads.store.generations import Generations

__all__ = ["GENERATION", "TURN_KEYS", "add", "empty", "roll"]

#: Pairs a generation of ``turn_keys`` holds before the next one begins (about a
#: million spans' turns at the soak's four spans a turn).
GENERATION = 1 << 18

TURN_KEYS = Generations("turn_keys", "turn_id VARCHAR, thread_id VARCHAR", index="turn_id")


def add(con: duckdb.DuckDBPyConnection, db: str, select: str) -> None:
    """Add the pairs ``select`` gives (columns turn_id, thread_id) to the newest
    generation of ``db``'s (``con``'s file's) turn keys."""
    newest = TURN_KEYS.tables(con)[-1]
    con.execute(f"INSERT INTO {db}.{newest} {select}")


def roll(con: duckdb.DuckDBPyConnection) -> bool:
    """Begin the next generation when the newest holds `GENERATION` pairs (in a
    transaction of its own; the caller holds every refresh off). Whether it did."""
    tables = TURN_KEYS.tables(con)
    if not tables:  # (a file not migrated yet)
        return False
    ((count,),) = con.execute(f"SELECT count(*) FROM {tables[-1]}").fetchall()
    if count < GENERATION:
        return False
    con.execute("BEGIN TRANSACTION")
    try:
        TURN_KEYS.begin(con, tables)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def empty(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every generation and begin again from an empty ``turn_keys_0`` (in the
    caller's transaction): ``turns_mat`` is being derived anew."""
    TURN_KEYS.restart(con)
