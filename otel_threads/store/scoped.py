"""`Scoped`: the connection of a derivation and its scope, TEMP tables that stand in
for the file's own while a refresh runs (otel_threads.store.derive says why)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import duckdb
import pyarrow as pa

from otel_threads.store.claims import Share
from otel_threads.store.insert import CONTENT_BYTES
from otel_threads.store.trace_numbers import lookup

__all__ = ["Scoped"]

#: Above this many keys a scope is a temp table join instead of an IN list.
_IN_LIST_MAX = 2000
#: Above this many keys `Scoped._in_rows` matches through a TEMP table.
_IN_ROWS_LIST_MAX = 16
#: Spans of traces looked up whole are read from the stretch of spans_raw they lie in
#: when it holds at most this many rows per span (`Scoped._read_whole`): a row of the
#: stretch costs its trace_id compared (30 ns), a span fetched through the index 55 us.
_STRETCH = 256


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Scoped:
    """A connection that may write, the file's own schema (``db``) and TEMP scopes."""

    def __init__(self, con: duckdb.DuckDBPyConnection, share: Share | None = None) -> None:
        self.con = con
        self._scopes = 0
        #: of a deriver beside others: the share of the threads it takes (`Queue._oldest`)
        self.share = share
        self._claims = None if share is None else share.claims
        self._claiming: int | None = None  # the transaction that claims, while it runs
        #: trace -> its number, for the refresh under way: from its queue rows
        #: (`Queue._batch_rows`) or looked up (`_in_traces`); forgotten at the next one
        self._numbers: dict[str, int] = {}
        # The file's own tables, named through its catalog: while TEMP tables shadow
        # them, "main.x" would resolve to temp.main.x.
        name = con.execute("SELECT current_database()").fetchall()[0][0]
        self.db = '"' + name.replace('"', '""') + '".main'
        #: the sequence of derive versions, as a string literal (nextval takes its name)
        self.version_seq = "'" + f"{self.db}.derive_version_seq".replace("'", "''") + "'"

    def _scope(self, traces: list[str], ranges: dict[str, tuple[int, int | None]]) -> list[str]:
        """TEMP ``spans_raw`` and ``logs`` holding only the spans and log records of
        ``traces``; returns those of them that may have derived rows already (derived
        before, set aside, or queued without a first span: the others are new).

        A new trace (queued, never derived) has every span in the commits that queued it,
        so its spans are read between the first of those and the last (``ranges``: the
        trace's first ``ingest_seq`` and last, None when unknown): ``ingest_seq`` grows
        with each commit, and DuckDB's zone maps skip the row groups outside, so the read
        costs the batch's stretch of the table, not the whole store (nor, while derivation
        works off a backlog, the whole backlog). The others' are looked up whole.
        """
        con, db = self.con, self.db
        for name in ("spans_raw", "logs"):
            con.execute(f"DROP TABLE IF EXISTS temp.{name}")
        in_traces = self._in_traces(traces)
        first = {t: lo for t, (lo, _) in ranges.items()}
        last = {t: hi for t, (_, hi) in ranges.items()}
        rows_in_traces = self._in_rows("trace_id", traces)
        seen = {
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT trace_id FROM {db}.span_threads_mat WHERE {in_traces} "
                f"UNION SELECT trace_id FROM {db}.derive_errors WHERE {rows_in_traces}"
            ).fetchall()
        }
        new = [t for t in traces if t in first and t not in seen]
        old = [t for t in traces if t not in first or t in seen]
        since = min((first[t] for t in new), default=0)
        if any(last[t] is None for t in new):  # queued before 0012: no last commit known
            until = 2**63 - 1
        else:
            until = max((last[t] for t in new), default=0)
        con.execute(
            f"CREATE TEMP TABLE spans_raw AS SELECT * FROM {db}.spans_raw "
            f"WHERE ingest_seq BETWEEN ? AND ? AND {self._in_rows('trace_id', new)}",
            [since, until],
        )
        if old:
            self._read_whole(old)
        # (most stores hold no log records: then no list of the batch's traces to parse)
        has_logs = con.execute(f"SELECT 1 FROM {db}.logs LIMIT 1").fetchall()
        in_logs = in_traces if has_logs else "false"
        con.execute(f"CREATE TEMP TABLE logs AS SELECT * FROM {db}.logs WHERE {in_logs}")
        return old

    def _read_whole(self, traces: list[str]) -> None:
        """Every span of ``traces`` into TEMP ``spans_raw``. Through the trace_n index
        DuckDB fetches them a row at a time, every column (55 ms for 1,000 spans); so when
        their ``ingest_seq`` (looked up alone through the index: 7 ms) lie within a
        stretch of the table at most `_STRETCH` times as long as they are many (a
        rebuild's batch, a trace with a late span), that stretch is read instead (9 ms)."""
        con, db = self.con, self.db
        in_traces = self._in_traces(traces)
        lo, hi, n = con.execute(
            f"SELECT min(ingest_seq), max(ingest_seq), count(*) FROM {db}.spans_raw "
            f"WHERE {in_traces}"
        ).fetchall()[0]
        if not n:
            return
        if hi - lo >= _STRETCH * n:
            lo, hi = 0, 2**63 - 1
        con.execute(
            f"INSERT INTO temp.spans_raw SELECT * FROM {db}.spans_raw "
            f"WHERE ingest_seq BETWEEN ? AND ? AND {in_traces}",
            [lo, hi],
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction, rolled back on any error; TEMP tables dropped after."""
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has ended it already
                con.execute("ROLLBACK")
            raise
        finally:
            self._drop_temps()

    @contextlib.contextmanager
    def _claimed(self) -> Iterator[None]:
        """Around a transaction that derives (its BEGIN inside): what it `_claim` s is held
        until it has ended (otel_threads.store.claims), for derivers beside others."""
        if self._claims is None:
            yield
            return
        self._claiming = self._claims.begin()
        committed = False
        try:
            yield
            committed = True
        finally:
            transaction, self._claiming = self._claiming, None
            self._claims.release(transaction, committed)

    def _claim(self, kind: str, keys: Iterable[str]) -> None:
        """Hold the traces or threads (``kind``) ``keys`` for the transaction under way,
        before it writes their rows; `Contended` when another deriver beside this one
        holds or has just changed one (then the transaction rolls back, to be tried
        again). Nothing to do for a deriver alone."""
        if self._claims is not None and self._claiming is not None:
            self._claims.claim(self._claiming, ((kind, key) for key in keys))

    def _in(self, column: str, values: Iterable[str]) -> str:
        """``column`` is one of ``values``: a list of constants, which DuckDB looks up
        in an index on ``column`` (a few ms for 1,000 keys in a table of millions, where
        a join would read the whole column); through a TEMP table above `_IN_LIST_MAX`.
        For a table without such an index, `_in_rows`."""
        values = list(values)
        if len(values) <= _IN_LIST_MAX:
            return f"{column} IN ({', '.join(map(_quote, values)) or 'NULL'})"
        return f"{column} IN (SELECT v FROM temp.{self._values(values)})"

    def _in_traces(self, traces: Iterable[str]) -> str:
        """The rows of ``traces``, for a table indexed by trace number (``trace_n``: the
        file's tables of rows per trace, and TEMP tables copied from them or from
        `_numbered`): their numbers (those the refresh does not know yet looked up in
        ``trace_numbers``, otel_threads.store.trace_numbers), then the table's index."""
        traces = set(traces)
        known = self._numbers
        if missing := [t for t in traces if t not in known]:
            known.update(lookup(self.con, missing, f"{self.db}.trace_numbers"))
        numbers = sorted(known[t] for t in traces if t in known)
        if len(numbers) <= _IN_LIST_MAX:
            return f"trace_n IN ({', '.join(map(str, numbers)) or 'NULL'})"
        return f"trace_n IN (SELECT v FROM temp.{self._values(numbers, pa.int64())})"

    def _numbered(self, select: str) -> str:
        """``select`` (rows of the traces in scope, with a column ``trace_id``) with their
        traces' numbers as a last column ``trace_n``, as the file's tables of rows per
        trace have it: from TEMP ``spans_raw`` and ``logs``, which hold them."""
        return (
            f"SELECT v.*, n.trace_n FROM ({select}) v LEFT JOIN (SELECT trace_id, "
            "max(trace_n) AS trace_n FROM (SELECT trace_id, trace_n FROM temp.spans_raw "
            "UNION ALL SELECT trace_id, trace_n FROM temp.logs) GROUP BY trace_id) n "
            "ON n.trace_id = v.trace_id"
        )

    def _in_rows(self, column: str, values: Iterable[str]) -> str:
        """``column`` is one of ``values``, matched by a join with a TEMP table holding
        them (but a few): for a table with no index on ``column``, a TEMP table, or rows
        bounded otherwise (zone maps). DuckDB parses and binds a list of 1,000
        constants in ~5 ms, a statement that reads a small table most of it; the TEMP
        table costs ~0.6 ms (bench/derive_profile.py)."""
        values = list(values)
        if len(values) <= _IN_ROWS_LIST_MAX:
            return self._in(column, values)
        return f"{column} IN (SELECT v FROM temp.{self._values(values)})"

    def _not_in(self, column: str, values: Iterable[str]) -> str:
        """``column`` is none of ``values``: always through a TEMP table (DuckDB tests a
        NOT IN list of constants one by one on every row: 0.8 s for 2,000 of them over a
        queue of 250k rows, 25 ms through a table)."""
        values = list(values)
        if not values:
            return "true"
        return f"{column} NOT IN (SELECT v FROM temp.{self._values(values)})"

    def _values(self, values: Iterable, kind: pa.DataType | None = None) -> str:
        """A TEMP table holding ``values`` (column ``v`` of type ``kind``, strings unless
        told); returns its name."""
        self._scopes += 1
        name = f"_scope_{self._scopes}"
        self._temp_table(name, pa.table({"v": pa.array(list(values), kind or pa.string())}))
        return name

    def _temp_table(self, name: str, rows: pa.Table) -> None:
        """A TEMP table ``name`` holding ``rows``."""
        self.con.register("__rows", rows)
        try:
            self.con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM __rows")
        finally:
            self.con.unregister("__rows")

    def _content_bytes(
        self, schema: str, where: str = "true", spans_where: str = "true"
    ) -> dict[str, int]:
        """Bytes of content (`CONTENT_BYTES`, as the queue counts them) per trace of
        ``schema``'s spans_raw and logs (``where``; of spans, also ``spans_where``)."""
        return dict(
            self.con.execute(f"""
            SELECT trace_id, sum(n) FROM (
                SELECT trace_id, {CONTENT_BYTES["spans"]} AS n
                FROM {schema}.spans_raw WHERE {where} AND {spans_where}
                UNION ALL
                SELECT trace_id, {CONTENT_BYTES["logs"]}
                FROM {schema}.logs WHERE trace_id IS NOT NULL AND {where})
            GROUP BY trace_id""").fetchall()
        )

    def _first_column(self, sql: str, params: list | None = None) -> list[str]:
        """The first column of ``sql``'s rows (`_fetch`)."""
        return [r[0] for r in self._fetch(sql, params)]

    def _fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        """``sql``'s rows (a query that may use `_in`'s TEMP tables, dropped after)."""
        try:
            return self.con.execute(sql, params or []).fetchall()
        finally:
            self._drop_temps()

    def _drop_temps(self) -> None:
        for (name,) in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary"
        ).fetchall():
            self.con.execute(f'DROP TABLE IF EXISTS temp."{name}"')
        self._scopes = 0
