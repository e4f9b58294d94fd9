"""Keeping the derived tables behind the public views up to date.

Threads, turns and transcripts are defined once, as SQL views named
``derive_<view>`` (otel_threads/sql/). Evaluated over the whole store they are
too slow to query interactively (a recursive walk over every span tree, JSON
parsing of every LLM call), so their rows are kept in tables ``<view>_mat``
and the public views (`span_threads`, `turns`, `transcript`, `threads`) read
those tables. The views stay the contract; this module only feeds them.

Keeping them current is incremental. The writer records the trace ids of every
committed batch in ``derive_queue`` (in the same transaction, so a crash loses
nothing), and `refresh` re-derives exactly what those traces can affect:

1. the thread/turn resolution of every span of those traces, and of the traces
   linked to them: a turn without a thread id takes its thread along its chain of
   ``previous_turn_id`` links, so the traces up that chain (to a turn whose thread
   is known) are evaluated with it, and the traces of turns that wait on a turn
   that just arrived are re-resolved (``linked_turns`` indexes the links);
2. the turn, transcript and thread rows of the threads those traces belonged to
   before or belong to now (otel_threads.store.thread_rows): what the traces add is
   derived from them alone, and what depends on the whole thread (numbering,
   branches, the transcript's order, totals) from the thread's kept narrow rows, so
   a new turn of a long thread costs about what a turn of a short one does.

A new trace's spans are read between the commits that queued it (``first_seq``,
``last_seq``: a stretch of spans_raw, whatever the store's size, `Scoped._scope`).

A refresh takes a bounded batch off the queue (`BATCH_TRACES`, `BATCH_BYTES`), so its
work follows the batch: the rest waits for the next refresh. The batch takes along the
other queued traces of its threads (`WIDEN`): the rows of a thread that depend on all of
it are derived once for all of its waiting turns, not once per turn.
Chains of links are resolved set-wise, in a few statements however long they are (a loop
of links in bad data ends where it closes), and traces whose resolution walks links
derive apart from the others, which never wait behind a long chain. When the traces a
batch's links reach close within a few rounds, the queued ones among them are derived
and taken off the queue with it, so a chain that arrives in many commits is derived
once, not once per commit. LLM calls and messages are parsed a chunk of traces at a time
(otel_threads.store.shared_views): huge calls cost their texts, not many copies of them.

It evaluates the same ``derive_*`` views, scoped: for the duration of a refresh,
TEMP tables named like the inputs (``spans_raw``, ``logs``, the ``*_mat`` tables)
hold only the rows in scope, and DuckDB resolves the views' unqualified table
names to them first (this module names the file's own tables through its
catalog for that reason). So no derivation SQL is written twice.

The tables themselves are the schema's (migrations 0007, 0010). `rebuild` derives
tables anew, streamed through the queue; `apply_views` calls it for tables whose rows
other SQL derived (a new version of otel-threads), as ``otel_threads_derived`` records.
"""

from __future__ import annotations

import logging

import duckdb

from otel_threads.store import turn_keys
from otel_threads.store.claims import Share
from otel_threads.store.links import Links
from otel_threads.store.queue import Queue
from otel_threads.store.set_aside import SettingAside, data_error
from otel_threads.store.sqlfiles import DERIVED, sql_files
from otel_threads.store.thread_rows import ThreadRows

__all__ = ["DERIVED", "Deriver", "data_error"]

_logger = logging.getLogger(__name__)

#: What one refresh takes off the queue at most: traces, and bytes of their content
#: (span attributes and events, log bodies and attributes), at least one trace. The rest
#: waits for the next refresh, so one huge thread or chain never holds the others long.
BATCH_TRACES = 2000
BATCH_BYTES = 64 << 20
#: A batch takes along the other queued traces of its threads, up to WIDEN times
#: BATCH_TRACES in all (and BATCH_BYTES still): see `Deriver._same_threads`.
WIDEN = 8
#: Rounds of widening a refresh's traces to what their links reach: when they close
#: within it, every queued trace derived on the way is taken off the queue too.
_CLOSURE_ROUNDS = 4


class Deriver(Links, ThreadRows, SettingAside, Queue):
    """Derives into the ``*_mat`` tables on a connection that may write."""

    def __init__(self, con: duckdb.DuckDBPyConnection, share: Share | None = None) -> None:
        super().__init__(con, share)
        #: traces set aside by this deriver since it started (see `set_aside`)
        self.set_aside_total = 0

    # -- whole-store builds ---------------------------------------------------------

    def _tables(self) -> set[str]:
        return {
            r[0]
            for r in self.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        }

    def enabled(self) -> bool:
        """Whether this store has derived tables to keep up to date."""
        return DERIVED[0][0] in self._tables()

    def stale(self) -> list[tuple[str, str]]:
        """(table, view) of the derived tables whose rows other SQL than this version's
        derived (or none yet: migration 0007 creates them empty), in dependency order. A
        table derived by SQL that differs only in what it leaves out of a table
        (`SqlFiles.versions`) is stamped as this version's instead."""
        have = dict(self.con.execute("SELECT name, version FROM otel_threads_derived").fetchall())
        files = sql_files()
        stale = [(t, v) for t, v, _ in DERIVED if have.get(t) != files.version(v)]
        same = [(t, v) for t, v in stale if have.get(t) in files.versions(v)]
        for table, view in same:  # (derived by the same SQL as now: stamped as now's)
            self.con.execute(
                "INSERT OR REPLACE INTO otel_threads_derived VALUES (?, ?)",
                [table, files.version(view)],
            )
        return [(t, v) for t, v in stale if (t, v) not in same]

    def rebuild(self, stale: list[tuple[str, str]]) -> None:
        """Derive the ``stale`` tables anew, streamed (one transaction to start it): their
        rows are deleted, and every stored trace is queued, in the order its first span
        arrived, for `refresh` to derive a bounded batch at a time: as live derivation
        met them, so a batch's spans lie in one stretch of spans_raw and its threads grow
        from their tails (in thread order, each batch's spans lay all over the table).
        So a rebuild holds one batch's memory at any store size, costs each trace what
        live derivation did, sets aside only the traces that fail, and (on the collector,
        whose derivation works the queue off behind ingest) stops neither ingest nor
        reads: the threads fill in as their batches are derived."""
        if not stale:
            return
        db = self.db
        if [table for table, _ in stale] == ["thread_tails_mat"]:
            self._fill_thread_tails()
            return
        with self._transaction() as con:
            for table, view in stale:
                if con.execute(f"SELECT 1 FROM {db}.{table} LIMIT 1").fetchall():
                    self._empty(table)
                if table == "turns_mat":  # (its turns' keys go with it)
                    turn_keys.empty(con)
                con.execute(
                    "INSERT OR REPLACE INTO otel_threads_derived VALUES (?, ?)",
                    [table, sql_files().version(view)],
                )
            self._stamp_build()
            con.execute("DELETE FROM derive_queue")
            con.execute(
                # (no bytes: reading every span's content would keep the store from
                # opening for minutes; `_batch` reads the sizes of the batch's traces)
                f"INSERT INTO derive_queue (trace_id, thread_id, first_seq, last_seq) SELECT "
                f"trace_id, thread_id, first_seq, last_seq FROM (SELECT trace_id, "
                f"max(thread_id) AS thread_id, min(ingest_seq) AS first_seq, "
                f"max(ingest_seq) AS last_seq FROM {db}.spans_raw GROUP BY trace_id) "
                f"ORDER BY first_seq"
            )
        queued = self.pending()
        _logger.log(  # worth a line only over stored data (an upgrade), not a new file
            logging.INFO if queued else logging.DEBUG,
            "derived tables %s come from other SQL: deriving them anew, %d traces queued",
            ", ".join(t for t, _ in stale),
            queued,
        )

    def _fill_thread_tails(self) -> None:
        """Derive thread_tails_mat alone, when it is the one derived table other SQL
        derived (or none yet: a store from before it), from the rows of the others, as
        they are: derive_thread_tails over the whole store, reading the transcript's rows
        as transcript_mat holds them (the rows transcript_rows derived, with their texts).
        A group of each table's rows by thread: no trace needs deriving again."""
        with self._transaction() as con:
            con.execute(f"DELETE FROM {self.db}.thread_tails_mat")
            con.execute(  # (made and dropped in the transaction: gone on a rollback too)
                "CREATE TEMP VIEW transcript_rows AS SELECT thread_id, thread_seq, "
                f"on_current_branch FROM {self.db}.transcript_mat"
            )
            con.execute(f"INSERT INTO {self.db}.thread_tails_mat SELECT * FROM derive_thread_tails")
            con.execute("DROP VIEW temp.transcript_rows")
            con.execute(
                "INSERT OR REPLACE INTO otel_threads_derived VALUES (?, ?)",
                ["thread_tails_mat", sql_files().version("derive_thread_tails")],
            )
        _logger.info("derived table thread_tails_mat comes from other SQL: derived it anew")

    def _empty(self, table: str) -> None:
        """Empty the file's ``table``: dropped and made again, with its indexes (a DELETE of
        every row of a large indexed table took minutes to commit: 13 s for 1.5M rows)."""
        con = self.con
        (ddl,) = con.execute(
            "SELECT sql FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ?",
            [table],
        ).fetchone()
        indexes = [
            r[0]
            for r in con.execute(
                "SELECT sql FROM duckdb_indexes() WHERE database_name = current_database() "
                "AND schema_name = 'main' AND table_name = ?",
                [table],
            ).fetchall()
        ]
        con.execute(f"DROP TABLE {self.db}.{table}")
        for sql in (ddl, *indexes):
            con.execute(sql)

    # -- incremental -------------------------------------------------------------------

    def pending(self) -> int:
        """Traces waiting to be re-derived."""
        return int(self.con.execute("SELECT count(*) FROM derive_queue").fetchall()[0][0])

    def refresh(self, limit: int = BATCH_TRACES, max_bytes: int = BATCH_BYTES) -> int:
        """Re-derive what a batch of queued traces affects; returns the traces taken off
        the queue (0 when it is empty).

        The batch is the oldest queued traces, at most ``limit`` of them, with the other
        queued traces of their threads (`WIDEN` times ``limit`` in all), and at most
        ``max_bytes`` of content (at least one trace): a refresh's work follows its batch,
        and the rest waits for the next refresh. Traces whose turns take part in chains of links
        without a thread id are derived after the others, in a transaction of their own,
        so a long chain (or a loop of links in bad data) keeps no other thread waiting.

        One transaction per group, unless it fails on the data: then the traces are
        split and derived apart until each one that still fails stands alone; that one
        is set aside (`set_aside`) and the rest derive. Traces set aside before, or of a
        thread that has one set aside, are tried one by one, so they cost the others
        nothing. Errors of the store itself (I/O, a fatal error, no memory) are raised:
        nothing is set aside for them, and the queue keeps the traces for the next try.
        """
        traces = self._batch(limit, max_bytes)
        if not traces:
            return 0
        suspects = set(self._suspects(traces))
        rest = [t for t in traces if t not in suspects]
        linked = self._linked_in(rest) if rest else set()
        plain = [t for t in rest if t not in linked]
        groups = [g for g in (plain, [t for t in rest if t in linked]) if g]
        for group in groups + [[t] for t in sorted(suspects)]:
            self._derive_or_split(group)
        return len(traces)

    def _batch(self, limit: int, max_bytes: int) -> list[str]:
        """The oldest queued traces, at most ``limit``, then the other queued traces of
        their threads; in all at most ``max_bytes`` of content (at least one trace), as
        the queue counts it (what their commits brought), or as stored when it does not
        (traces queued by a rebuild)."""
        queued = self._oldest(max(1, limit))
        rows = self._batch_rows(queued)
        threads = {r.thread_id for rs in rows.values() for r in rs if r.thread_id is not None}
        more = self._same_threads(
            threads, queued, WIDEN * max(1, limit) - len(queued), self._widen_until(rows)
        )
        rows.update(self._batch_rows(more))
        queued += more
        if len(queued) <= 1:
            return queued
        sizes = {
            trace: sum(r.bytes for r in rs if r.bytes is not None)
            for trace, rs in rows.items()
            if rs and all(r.bytes is not None for r in rs)
        }
        unknown = [t for t in queued if t not in sizes]  # queued by a rebuild
        if unknown:
            # (a rebuild's row has its trace's first and last span: read that stretch)
            seqs = self._stretch([r for t in unknown for r in rows[t]])
            stretch = "true" if seqs is None else "ingest_seq BETWEEN {} AND {}".format(*seqs)
            try:
                sizes.update(self._content_bytes(self.db, self._in("trace_id", unknown), stretch))
            finally:
                self._drop_temps()
        batch, total = [], 0
        for trace in queued:
            total += int(sizes.get(trace) or 0)
            if batch and total > max_bytes:
                break
            batch.append(trace)
        return batch

    def _derive(self, traces: list[str]) -> None:
        """Re-derive ``traces`` and take them off the queue, in one transaction; with them
        the queued traces that their links reached, when those were derived in full."""
        with self._claimed(), self._transaction() as con:
            derived = self._refresh(traces)
            rows = self._queued(sorted(derived))
            self._dequeue(rows)
            done = self._in_rows("trace_id", sorted(set(traces) | {r.trace_id for r in rows}))
            con.execute(f"DELETE FROM derive_errors WHERE {done}")

    def _refresh(self, traces: list[str]) -> set[str]:
        """Re-derive ``traces``; returns the traces whose rows are now derived as a
        refresh of each alone would derive them: ``traces``, and when the traces their
        links reach close within a few rounds, those too."""
        batch = set(traces)
        derived = set(batch)
        for _ in range(_CLOSURE_ROUNDS):
            old = self._scope_queued(sorted(derived))
            linked = self._linked_traces(derived)
            if not linked:
                self._derive_scope(sorted(derived), old)
                return derived
            derived |= linked
        # still widening: derive what was reached, and count only the batch as done
        old = self._scope_queued(sorted(derived))
        self._derive_scope(sorted(derived), old)
        return batch

    def _scope_queued(self, traces: list[str]) -> list[str]:
        """`_scope` ``traces``, read between the commits that queued them (`_queued`)."""
        return self._scope(traces, self._seq_ranges(self._queued(traces)))

    def _derive_scope(self, traces: list[str], old: list[str]) -> None:
        """Derive the span threads of ``traces`` (whose spans are in TEMP ``spans_raw``;
        ``old``: those that may have derived rows), then the rows of the threads they were
        in or are in (`ThreadRows`)."""
        con, db = self.con, self.db
        self._claim("trace", traces)
        before: set[tuple[str, str | None]] = set()
        renewed: set[str] = set()  # threads that old traces were in or are in
        if old:
            in_old = self._in_traces(old)
            before = self._turns_of(f"{db}.span_threads_mat", in_old)
            con.execute(f"DELETE FROM {db}.span_threads_mat WHERE {in_old}")
        con.execute(
            "CREATE TEMP TABLE _span_threads AS "
            + self._numbered("SELECT * FROM derive_span_threads")
        )
        con.execute(f"INSERT INTO {db}.span_threads_mat SELECT * FROM temp._span_threads")
        if old:
            renewed = {t for t, _ in before | self._turns_of("temp._span_threads", in_old)}
        touched = before | self._turns_of("temp._span_threads", "true")
        self._claim("thread", {thread for thread, _ in touched})
        if touched:
            self._derive_threads(
                traces, sorted(touched, key=lambda p: (p[0], p[1] or "")), old, renewed
            )

    def _stamp_build(self) -> None:
        """A derived table was built from scratch: every thread may read differently."""
        if "thread_versions" in self._tables():
            self.con.execute(
                f"INSERT INTO {self.db}.derive_builds (version) SELECT nextval({self.version_seq})"
            )

    def _turns_of(self, table: str, where: str) -> set[tuple[str, str | None]]:
        """(thread, turn) of the span threads in ``table`` (``where``; turn None: spans of
        the thread in no turn)."""
        return {
            (r[0], r[1])
            for r in self.con.execute(
                f"SELECT DISTINCT thread_id, turn_id FROM {table} "
                f"WHERE {where} AND thread_id IS NOT NULL"
            ).fetchall()
        }
