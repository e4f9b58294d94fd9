"""`Queue`: the rows of ``derive_queue`` that a refresh takes (otel_threads.store.derive).

The queue has no index (its rows are deleted every refresh; `Store.checkpoint_lock` says
what indexed tables risk), so a statement that names queued traces by their ids reads the
trace id of every queued row: 30 ms at a backlog of a million rows (a rebuild, or a
collector whose derivation lags), which a refresh paid five times. It pays once:
`_batch_rows` reads the rows of the batch with their rowids, and the refresh's
transactions name them by rowid (`_queued`), which DuckDB reads from the row groups that
hold them alone (1 ms).

A rowid names the same row until a checkpoint compacts the table; the collector's
checkpoints wait for the refresh under way (`Store.checkpoint_lock`), and should one run
between a refresh's transactions all the same, `_queued` keeps only the rows still of
the same trace and looks any other trace up by its id: a row is never taken off for
another. A row that a commit queues after `_batch_rows` read the batch stays queued, so
its trace is derived again by a later refresh.
"""

from __future__ import annotations

from typing import NamedTuple

import duckdb
import pyarrow as pa

from otel_threads.store.claims import Share
from otel_threads.store.scoped import Scoped

__all__ = ["Queue", "QueueRow"]

_COLUMNS = "rowid, trace_id, thread_id, first_seq, last_seq, bytes, trace_n"

#: A batch widens to queued traces of its threads whose spans came at most this many
#: times the stretch of its oldest traces past that stretch, or `WIDEN_MIN_ROWS` rows
#: when that is more (`Queue._widen_until`): a refresh reads a new trace's spans as the
#: stretch of spans_raw its batch spans, so an unbounded widening (a thread that comes
#: back a day later, a rebuild) would read the whole table for one trace. (A row of the
#: stretch costs a refresh its trace id compared: 30 ns, 8 ms for the least bound.)
WIDEN_STRETCH = 8
WIDEN_MIN_ROWS = 1 << 18


class QueueRow(NamedTuple):
    """A row of ``derive_queue``, and its ``rowid``."""

    rowid: int
    trace_id: str
    thread_id: str | None
    first_seq: int | None
    last_seq: int | None
    bytes: int | None
    trace_n: int | None


class Queue(Scoped):
    """Reads a refresh's batch off ``derive_queue`` and takes it off."""

    def __init__(self, con: duckdb.DuckDBPyConnection, share: Share | None = None) -> None:
        super().__init__(con, share)
        #: trace -> the rowids of its queued rows, as the refresh under way read them
        self._known: dict[str, list[int]] = {}

    def _oldest(self, limit: int) -> list[str]:
        """The ``limit`` oldest queued traces (by their first queue row). Looked for first
        among the queue's oldest 4 x ``limit`` rows (a range of rowids, which DuckDB reads
        alone), so a backlog of a million traces costs a refresh what a short queue does:
        a trace with a row there has its first row there too, and any other is younger.
        Only when those rows hold fewer traces is the whole queue grouped. Of a deriver
        beside others (``share``), the traces of its share of the threads, by the
        thread id they were queued with. Starts a refresh: the rows read before are
        forgotten."""
        self._known = {}
        self._numbers = {}
        part, parts = (0, 1) if self.share is None else self.share[:2]
        # (beside other derivers: this one's share of the threads, by the thread id its
        # rows were queued with, any of them: a trace's log records come with none; a
        # trace queued with none is the first share's)
        mine = (
            ""
            if parts == 1
            else f"HAVING (CASE WHEN max(thread_id) IS NULL THEN 0 "
            f"ELSE hash(max(thread_id)) % {parts} END) = {part} "
        )
        oldest = (
            f"SELECT trace_id FROM derive_queue {{}} GROUP BY trace_id {mine}"
            f"ORDER BY min(rowid) LIMIT ?"
        )
        (first,) = self.con.execute("SELECT min(rowid) FROM derive_queue").fetchall()[0]
        if first is None:
            return []
        traces = self._first_column(
            oldest.format("WHERE rowid BETWEEN ? AND ?"), [first, first + 4 * parts * limit, limit]
        )
        if len(traces) < limit:
            traces = self._first_column(oldest.format(""), [limit])
        return traces

    def _same_threads(
        self, threads: set[str], traces: list[str], limit: int, until: int | None = None
    ) -> list[str]:
        """Other queued traces than ``traces`` of ``threads`` (at most ``limit``, the
        oldest first), whose spans all came by the ``ingest_seq`` ``until`` (None: any):
        deriving a thread reads all of its traces, so its waiting turns cost little more
        in the same refresh, and a lot in the next one. (A new trace's spans are read as
        the stretch of spans_raw between its batch's first and last: `_widen_until`
        keeps that stretch near the batch's own.)"""
        if limit <= 0 or not threads:
            return []
        # (a row queued before 0012 knows no last: not taken along under a bound)
        near = "true" if until is None else f"coalesce(last_seq <= {int(until)}, false)"
        return self._first_column(
            f"SELECT trace_id FROM derive_queue WHERE {self._in('thread_id', sorted(threads))} "
            f"AND {self._not_in('trace_id', traces)} GROUP BY trace_id "
            f"HAVING bool_and({near}) ORDER BY min(rowid) LIMIT ?",
            [limit],
        )

    @staticmethod
    def _stretch(rows: list[QueueRow]) -> tuple[int, int] | None:
        """The first and last ``ingest_seq`` of the commits that queued ``rows``: the
        stretch of spans_raw their new spans lie in; None when a row knows no stretch
        (queued before 0012), or for no rows."""
        seqs = [s for r in rows for s in (r.first_seq, r.last_seq)]
        if not seqs or None in seqs:
            return None
        return min(seqs), max(seqs)

    def _widen_until(self, rows: dict[str, list[QueueRow]]) -> int | None:
        """How far past its oldest traces (``rows``) a batch widens (`_same_threads`):
        `WIDEN_STRETCH` times the `_stretch` they lie in (`WIDEN_MIN_ROWS` at least), past
        its end; None (no bound) when they know no stretch."""
        stretch = self._stretch([r for rs in rows.values() for r in rs])
        if stretch is None:
            return None
        lo, hi = stretch
        return hi + max(WIDEN_STRETCH * (hi - lo + 1), WIDEN_MIN_ROWS)

    def _batch_rows(self, traces: list[str]) -> dict[str, list[QueueRow]]:
        """trace -> its queued rows, for each of ``traces`` (one read of the queue's trace
        ids), remembered for the refresh's transactions (`_queued`)."""
        rows: dict[str, list[QueueRow]] = {t: [] for t in traces}
        if traces:
            sql = f"SELECT {_COLUMNS} FROM derive_queue WHERE {self._in_rows('trace_id', traces)}"
            for row in map(QueueRow._make, self._fetch(sql)):
                rows[row.trace_id].append(row)
        self._known.update({t: [r.rowid for r in rs] for t, rs in rows.items() if rs})
        # (the writer numbered each trace in the commit that queued it; a row queued
        # otherwise has no number, and its trace is looked up)
        for trace, rs in rows.items():
            numbers = {r.trace_n for r in rs}
            if rs and None not in numbers:
                # (a trace evicted and stored again has a newer number: the larger one)
                self._numbers[trace] = max(numbers)
        return rows

    def _queued(self, traces: list[str]) -> list[QueueRow]:
        """The queued rows of ``traces``, read in the transaction under way: of those
        `_batch_rows` read, the rows by their rowids (those still of the same trace); of
        any other trace (one that links brought in, or whose rows moved), its rows
        wherever they are."""
        wanted = set(traces)
        rowids = [r for t in traces for r in self._known.get(t, ())]
        rows = []
        if rowids:
            sql = f"SELECT {_COLUMNS} FROM derive_queue WHERE {self._rowid_in(rowids)}"
            rows = [r for r in map(QueueRow._make, self._rows(sql)) if r.trace_id in wanted]
        found = {r.trace_id for r in rows}
        if unknown := [t for t in traces if t not in found]:
            sql = f"SELECT {_COLUMNS} FROM derive_queue WHERE {self._in_rows('trace_id', unknown)}"
            rows += map(QueueRow._make, self._rows(sql))
        return rows

    @staticmethod
    def _seq_ranges(rows: list[QueueRow]) -> dict[str, tuple[int, int | None]]:
        """trace -> the first and last ``ingest_seq`` of the commits that queued it (last
        None when a row queued before 0012 knows no last), of ``rows`` with a first."""
        ranges: dict[str, tuple[int, int | None]] = {}
        for row in rows:
            if row.first_seq is None:
                continue
            lo, hi = ranges.get(row.trace_id, (row.first_seq, row.last_seq))
            last = None if hi is None or row.last_seq is None else max(hi, row.last_seq)
            ranges[row.trace_id] = (min(lo, row.first_seq), last)
        return ranges

    def _dequeue(self, rows: list[QueueRow]) -> None:
        """Delete ``rows`` (`_queued`, in the same transaction) from the queue."""
        if rows:
            where = self._rowid_in([r.rowid for r in rows])
            self.con.execute(f"DELETE FROM derive_queue WHERE {where}")

    def _rowid_in(self, rowids: list[int]) -> str:
        """The queue's rows of ``rowids``, through a TEMP table (a list of constants took
        110 ms for 16,000 rowids, a join 15 ms: DuckDB skips the row groups without one
        either way)."""
        return f"rowid IN (SELECT v FROM temp.{self._values(rowids, pa.int64())})"

    def _rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()
