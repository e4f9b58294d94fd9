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

The numbers are kept in generations (migration 0020): tables ``trace_numbers_0``,
``trace_numbers_1``, ... of at most `GENERATION` traces, read together through the view
``trace_numbers``. The writer adds to the newest alone and begins the next when it is
full (`SeenTraces.newest`), so the one random index it writes to, and that a checkpoint
writes about whole, stays the size of a generation while the store grows.

Most of a batch's traces are new, and looking them up cost the writer more than storing
their spans' numbers (a list of a few hundred constants parsed and probed one by one): the
writer keeps `SeenTraces`, a Bloom filter of the trace ids numbered in the file, and looks
up only the traces it may have seen.

The writer counts the numbers itself (`SeenTraces.next_n`), on from the largest given
(`next_number`); before migration 0024 they were drawn from the sequence ``trace_n_seq``
(a statement, and its answer turned into Python objects, at every commit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otel_threads.store.generations import Generations

__all__ = [
    "GENERATION",
    "LOOKUP_CHUNK",
    "SeenTraces",
    "generations",
    "lookup",
    "next_number",
    "number",
    "trace_hashes",
]

#: Trace ids looked up through the index at most: DuckDB looks a list of constants up
#: through an index only while the rows it expects are few (``index_scan_max_count``:
#: 2,048); more are matched by a join.
LOOKUP_CHUNK = 2000

#: Traces a generation of ``trace_numbers`` holds (its index: about 18 MiB, and 20 ms of
#: a checkpoint after a few thousand new traces).
GENERATION = 1 << 18
_GENERATIONS = Generations("trace_numbers", "trace_id VARCHAR PRIMARY KEY, trace_n BIGINT NOT NULL")


def generations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of ``trace_numbers`` in the file (on ``con``'s default catalog), oldest
    first."""
    return _GENERATIONS.tables(con)


def _begin_generation(con: duckdb.DuckDBPyConnection, tables: list[str]) -> str:
    """Add the next table of ``trace_numbers`` (in the caller's transaction) and the view
    over them all; returns its name."""
    return _GENERATIONS.begin(con, tables)


def _unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """(after a failed statement the transaction is aborted and unregistering fails too:
    its error would hide the first one, an out-of-memory the writer tries again)"""
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)


def next_number(con: duckdb.DuckDBPyConnection) -> int:
    """The number the next new trace of ``con``'s file gets: past every number given,
    those of ``trace_numbers`` and those drawn from ``trace_n_seq`` (before migration 0024,
    and by bench/synth.py), so none is given twice, even one whose trace retention
    deleted."""
    ((given,),) = con.execute("SELECT coalesce(max(trace_n), 0) FROM trace_numbers").fetchall()
    drawn = con.execute(
        "SELECT last_value FROM duckdb_sequences() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND sequence_name = 'trace_n_seq'"
    ).fetchall()
    return max([given, *(v for (v,) in drawn if v is not None)]) + 1


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
        _unregister(con, "__lookup")


_NIBBLE = np.full(256, 255, np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every bit of the result depends on every bit of ``x``."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _offsets(ids: pa.Array) -> np.ndarray:
    return np.frombuffer(ids.buffers()[1], np.int32, len(ids) + 1, ids.offset * 4)


def trace_hashes(ids: pa.Array) -> np.ndarray:
    """A 64-bit hash of each trace id (no nulls), for `SeenTraces`: an id as producers
    send them (32 lowercase hex digits) by its two halves' bits, vectorized; any other
    by Python's hash (the same for the life of the process, which is the filter's)."""
    ids = ids.cast(pa.string())
    out = np.zeros(len(ids), np.uint64)
    hexlike = np.diff(_offsets(ids)) == 32
    rows = None if hexlike.all() else np.flatnonzero(hexlike)
    these = ids if rows is None else ids.take(pa.array(rows))  # (contiguous: one view)
    if len(these):
        start = int(_offsets(these)[0])
        digits = np.frombuffer(these.buffers()[2], np.uint8, 32 * len(these), start)
        digits = _NIBBLE[digits.reshape(-1, 32)]
        words = ((digits[:, 0::2] << 4) | digits[:, 1::2]).view(">u8").astype(np.uint64)
        hashed = _mix(words[:, 0] ^ _mix(words[:, 1]))
        out[slice(None) if rows is None else rows] = hashed
        hexlike[slice(None) if rows is None else rows] = (digits != 255).all(axis=1)
    for i in np.flatnonzero(~hexlike):  # (an odd id: not hex, or another length)
        out[i] = np.uint64(hash(ids[i].as_py()) & 0xFFFF_FFFF_FFFF_FFFF)
    return out


class SeenTraces:
    """A Bloom filter of the trace ids numbered in one open file: `maybe` is False only
    for an id certainly not in ``trace_numbers``. Built from the table at the writer's
    first commit after it opens the file (one scan of the ids: 0.43 s for a million
    traces) and told of each trace the writer numbers (`add`); the writer is the only
    one that numbers traces while the file is open, and a trace it adds in a transaction
    rolled back, or one retention deletes, only makes the filter answer "maybe" more
    often. It is sized for twice the traces it is built with, ``BITS`` bits each (and
    more: its size is a power of two), with ``HASHES`` bit positions: a new trace gets a
    "maybe" at most about once in 1,700 (when it holds all it was sized for), and it is
    built again, twice as large, past that (`outgrown`).

    It also keeps which generation of ``trace_numbers`` the writer adds to (`generation`),
    and the number the next new trace gets (``next_n``).
    """

    BITS = 16
    HASHES = 8
    #: the fewest traces a filter is sized for (2 MiB)
    MIN_TRACES = 1 << 20

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        #: the generation the writer adds to (None: to be found), and its traces
        self.newest: str | None = None
        self.newest_count = 0
        ((count,),) = con.execute("SELECT count(*) FROM trace_numbers").fetchall()
        self.next_n = next_number(con)
        self.capacity = max(self.MIN_TRACES, 2 * count)
        self._mask = np.uint64((1 << (self.capacity * self.BITS - 1).bit_length()) - 1)
        self._bits = np.zeros((int(self._mask) + 1) // 8, np.uint8)
        self.count = 0
        self.missed = False
        reader = con.sql("SELECT trace_id FROM trace_numbers").to_arrow_reader(1 << 20)
        for chunk in reader:
            self.add(trace_hashes(chunk.column(0)))

    def _positions(self, hashes: np.ndarray) -> np.ndarray:
        """Each hash's ``HASHES`` bit positions (double hashing over its two halves)."""
        h = hashes.astype(np.uint64, copy=False)[:, None]
        step = (h >> np.uint64(32)) | np.uint64(1)
        return (h + step * np.arange(self.HASHES, dtype=np.uint64)) & self._mask

    def add(self, hashes: np.ndarray) -> None:
        """Take in trace ids by their `trace_hashes`."""
        positions = self._positions(hashes).ravel()
        bits = np.left_shift(np.uint8(1), (positions & np.uint64(7)).astype(np.uint8))
        np.bitwise_or.at(self._bits, positions >> np.uint64(3), bits)
        self.count += len(hashes)

    def maybe(self, hashes: np.ndarray) -> np.ndarray:
        """Per hash, whether its trace may be numbered (False: certainly not)."""
        positions = self._positions(hashes)
        bits = (self._bits[positions >> np.uint64(3)] >> (positions & np.uint64(7))) & 1
        return bits.all(axis=1)

    def generation(self, con: duckdb.DuckDBPyConnection) -> str:
        """The table of ``trace_numbers`` to add new traces to: the newest, or the next
        one begun (in the caller's transaction) when that is full."""
        if self.newest is None:
            self.newest = generations(con)[-1]
            ((self.newest_count,),) = con.execute(f"SELECT count(*) FROM {self.newest}").fetchall()
        if self.newest_count >= GENERATION:
            self.newest, self.newest_count = _begin_generation(con, generations(con)), 0
        return self.newest

    def rolled_back(self) -> None:
        """A transaction of the writer's was rolled back: the generation it began, if
        any, is gone (the traces it added stay in the filter: "maybe" more often)."""
        self.newest = None

    @property
    def outgrown(self) -> bool:
        """Whether to build it again: it holds more traces than it was sized for, or it
        missed one (`number` found a trace it said was new: a bug, not to stop ingest)."""
        return self.count > self.capacity or self.missed


def number(
    con: duckdb.DuckDBPyConnection, batch: pa.Table, seen: SeenTraces | None = None
) -> tuple[pa.Table, pa.ChunkedArray | None]:
    """``batch`` (spans or log records about to be stored) with a column ``trace_n``: the
    number of each row's trace, given now to a trace the store has not seen (in the
    caller's transaction: a rollback takes it back); null for a row without a trace.
    And which rows' traces were numbered now (the store holds no row of them yet), or
    None when none was.

    The batch's traces are looked up first (with ``seen``, only those it may have
    seen), then the new ones numbered (by ``seen``'s count, or on from `next_number`) and
    inserted: 5 ms for 264 traces in a store of a million, where one INSERT ... ON
    CONFLICT DO NOTHING took 31."""
    ids = pc.drop_null(pc.unique(batch.column("trace_id"))).cast(pa.string())
    hashes = None
    if seen is not None:
        hashes = trace_hashes(ids)
        maybe = seen.maybe(hashes)
        known = lookup(con, ids.filter(pa.array(maybe)).to_pylist()) if maybe.any() else {}
    else:
        known = lookup(con, ids.to_pylist())
    keys = pa.array(list(known), pa.string())
    values = pa.array(list(known.values()), pa.int64())
    new = pc.invert(pc.is_in(ids, value_set=keys)) if known else None
    fresh = ids if new is None else ids.filter(new)
    if len(fresh):
        first = next_number(con) if seen is None else seen.next_n
        given = pa.array(np.arange(first, first + len(fresh), dtype=np.int64))
        table = generations(con)[-1] if seen is None else seen.generation(con)
        try:
            con.from_arrow(pa.table({"trace_id": fresh, "trace_n": given})).insert_into(table)
        except duckdb.ConstraintException:
            if seen is not None:  # (the commit fails; the writer's next one builds it again)
                seen.missed = True
            raise
        if seen is not None:
            seen.next_n = first + len(fresh)
            seen.newest_count += len(fresh)
            seen.add(hashes if new is None else hashes[new.to_numpy(zero_copy_only=False)])
        keys, values = pa.concat_arrays([keys, fresh]), pa.concat_arrays([values, given])
    column = batch.column("trace_id")
    if column.type != pa.string():
        column = column.cast(pa.string())
    numbered = pc.take(values, pc.index_in(column, value_set=keys))
    fresh_rows = pc.is_in(column, value_set=fresh) if len(fresh) else None
    return batch.append_column("trace_n", numbered), fresh_rows
