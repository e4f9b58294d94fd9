"""Trace numbers: each trace gets a number when its first span or log record is stored.

Trace ids are random, as producers make them. DuckDB holds an index (ART) in memory from
the first insert into it after a checkpoint until the next one, and writes the blocks
that changed at that checkpoint; random keys land all over an index, so a few hundred
of them touch most of it: an index by trace id was held in memory whole and written
about whole at every checkpoint, a cost that followed the store's size (docs/storage.md,
"Indexes and random ids"). Numbers grow with time, so the tables of rows per trace
(``spans_raw``, ``logs`` and the derived ``*_mat`` tables keyed by trace) are indexed by
their column ``trace_n`` instead, and new rows land at one edge of each index. One index
by trace id is left: ``trace_numbers``' own (one row per trace), which the writer reads
to number a batch (`number`) and the derivation to look traces up (`lookup`).

Migration 0018 numbered the traces of a store from before, in the order they arrived.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["LOOKUP_CHUNK", "lookup", "number"]

#: Trace ids looked up through the index at most: DuckDB looks a list of constants up
#: through an index only while the rows it expects are few (``index_scan_max_count``:
#: 2,048); more are matched by a join.
LOOKUP_CHUNK = 2000


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def lookup(
    con: duckdb.DuckDBPyConnection, traces: Iterable[str], table: str = "trace_numbers"
) -> dict[str, int]:
    """The numbers of those of ``traces`` that have one (``table``: the file's
    ``trace_numbers``, named through its catalog when TEMP tables shadow others)."""
    traces = sorted(set(traces))
    if len(traces) <= LOOKUP_CHUNK:
        listed = ", ".join(map(_quote, traces)) or "NULL"
        sql = f"SELECT trace_id, trace_n FROM {table} WHERE trace_id IN ({listed})"
        return dict(con.execute(sql).fetchall())
    # (more: one join, which reads the table's two columns whole, a few ms a million)
    con.register("__lookup", pa.table({"trace_id": pa.array(traces, pa.string())}))
    try:
        return dict(
            con.execute(
                f"SELECT k.trace_id, k.trace_n FROM {table} k SEMI JOIN __lookup l "
                "ON l.trace_id = k.trace_id"
            ).fetchall()
        )
    finally:
        con.unregister("__lookup")


def number(con: duckdb.DuckDBPyConnection, batch: pa.Table) -> pa.Table:
    """``batch`` (spans or log records about to be stored) with a column ``trace_n``: the
    number of each row's trace, given now to a trace the store has not seen (in the
    caller's transaction: a rollback takes it back); null for a row without a trace.

    The batch's traces are looked up first, then the new ones inserted: 5 ms for 264
    traces in a store of a million, where one INSERT ... ON CONFLICT DO NOTHING took 31."""
    ids = pc.drop_null(pc.unique(batch.column("trace_id"))).cast(pa.string()).to_pylist()
    known = lookup(con, ids)
    new = [t for t in ids if t not in known]
    if new:
        con.register("__new_traces", pa.table({"trace_id": pa.array(new, pa.string())}))
        try:
            known.update(
                con.execute(
                    "INSERT INTO trace_numbers SELECT trace_id, nextval('trace_n_seq') "
                    "FROM __new_traces RETURNING trace_id, trace_n"
                ).fetchall()
            )
        finally:
            con.unregister("__new_traces")
    keys = pa.array(list(known), pa.string())
    column = batch.column("trace_id")
    if column.type != pa.string():
        column = column.cast(pa.string())
    values = pa.array(list(known.values()), pa.int64())
    return batch.append_column("trace_n", pc.take(values, pc.index_in(column, value_set=keys)))
