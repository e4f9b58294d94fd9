"""The writer: one thread that owns the DuckDB connection and group-commits batches.

Receivers (and the in-process exporters) hand it decoded Arrow tables with
`submit`, which returns a future; the future resolves only after the
transaction holding those rows has committed, so an export is acknowledged
only once its data is durable. Everything that arrived while the previous
commit ran goes into the next transaction together (group commit), which keeps
commits few and large under load.

Redeliveries are dropped at insert: a span whose (trace_id, span_id) is already
stored, or a log record whose record_id is, is not inserted again. The lookup
is limited to rows with the same start time range, which DuckDB's zone maps
prune, so it stays cheap however large the table grows (a redelivered span has
exactly the start time it had).

Memory is bounded: `submit` raises `Overloaded` when the rows waiting for a
commit would exceed ``max_pending_rows``; receivers answer that with
UNAVAILABLE / HTTP 503 and exporters retry later.

Linked turns: every stored span that names a previous turn is also recorded in
``linked_turns``. With ``on_fork="reject"`` a turn that names a previous turn
which another turn already answers (a fork: "regenerate", "edit message") is
refused, with its spans in the same batch and any that arrive later; the
future's `Written` counts them and names the turn that answered first. Forks are
decided here, in the one thread that commits, so two concurrent exports cannot
both win.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from otel_threads.derive import Deriver, DeriveWorker
from otel_threads.store import connect
from otel_threads.writer_stats import KINDS, LATENCY_BUCKETS, WriterStats

__all__ = ["FORK_POLICIES", "LATENCY_BUCKETS", "Overloaded", "Writer", "WriterStats", "Written"]

_logger = logging.getLogger(__name__)



#: WAL size at which DuckDB checkpoints during a commit; below it, the writer
#: checkpoints only when idle.
WAL_CHECKPOINT_THRESHOLD = "256MB"

# Rows of the batch that are not stored yet. `{source}` is the batch itself, or
# the batch with in-batch duplicates removed (a window over the batch costs more
# than the rest of the insert, so it is used only when the batch has duplicates).
_INSERT = {
    "spans": """
        INSERT INTO spans BY NAME
        SELECT b.*, $received_at::TIMESTAMP AS received_at
        FROM {source} b
        WHERE NOT EXISTS (
            SELECT 1 FROM spans s
            WHERE s.start_time_unix_nano BETWEEN $lo AND $hi
              AND s.trace_id = b.trace_id AND s.span_id = b.span_id)
    """,
    "logs": """
        INSERT INTO logs BY NAME
        SELECT b.*, $received_at::TIMESTAMP AS received_at
        FROM {source} b
        WHERE NOT EXISTS (
            SELECT 1 FROM logs s
            WHERE s.time BETWEEN $lo::TIMESTAMP AND $hi::TIMESTAMP
              AND s.record_id = b.record_id)
    """,
}
_KEY = {"spans": ("trace_id", "span_id"), "logs": ("record_id",)}
# Columns holding JSON text. The decoder only ever writes valid JSON, so they go in
# typed as Arrow's JSON extension, which DuckDB takes without parsing every value
# again (a sixth of the insert cost).
_JSON_COLUMNS = {"spans": ("attributes", "events", "links", "resource_attributes",
                           "scope_attributes"),
                 "logs": ("body", "attributes", "resource_attributes")}
_JSON = pa.json_(pa.string())
_DEDUPED_BATCH = (
    "(SELECT * FROM __batch QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY ingest_seq) = 1)"
)
_RANGE_COLUMN = {"spans": "start_time_unix_nano", "logs": "time"}
_FULL_RANGE = {"spans": (-(2**63), 2**63 - 1),
               "logs": (dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31))}
_EPOCH = dt.datetime(1970, 1, 1)

#: What the writer does with a turn that answers a turn another turn already answers.
FORK_POLICIES = ("allow", "reject")

# Turn spans of the batch that fork: they name a previous turn that a stored turn, or
# one earlier in the batch, already names (a redelivered span is not a fork of itself).
_FORKS = """
    WITH cand AS (
        SELECT b.trace_id, b.span_id, b.previous_turn_id, b.ingest_seq
        FROM __batch b
        WHERE b.previous_turn_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM linked_turns l
                          WHERE l.trace_id = b.trace_id AND l.turn_id = b.span_id)
    ),
    stored AS (
        SELECT previous_turn_id, min(turn_id) AS answered_by
        FROM linked_turns
        WHERE previous_turn_id IN (SELECT previous_turn_id FROM cand)
        GROUP BY previous_turn_id
    ),
    first AS (
        SELECT previous_turn_id, arg_min(span_id, ingest_seq) AS span_id
        FROM cand
        GROUP BY previous_turn_id
    )
    SELECT DISTINCT c.trace_id, c.span_id, c.previous_turn_id,
           coalesce(s.answered_by, f.span_id) AS answered_by
    FROM cand c
    JOIN first f ON f.previous_turn_id = c.previous_turn_id
    LEFT JOIN stored s ON s.previous_turn_id = c.previous_turn_id
    WHERE s.answered_by IS NOT NULL OR c.span_id <> f.span_id
"""


class Overloaded(RuntimeError):
    """Too many rows are waiting for a commit; retry later."""

    def __init__(self, pending: int, limit: int, retry_after_s: float) -> None:
        super().__init__(
            f"the writer has {pending} rows waiting for a commit (limit {limit}); "
            f"retry in {retry_after_s:g}s"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Written:
    """What became of one submitted table once its transaction committed."""

    rows: int  #: rows submitted
    rejected: int = 0  #: rows refused (spans of a forking turn, with on_fork="reject")
    error: str | None = None  #: why, when rows were refused


class _Item:
    __slots__ = ("error", "future", "kind", "rejected", "rows", "table")

    def __init__(self, kind: str, table: pa.Table) -> None:
        self.kind = kind
        self.table = table
        self.rows = table.num_rows
        self.rejected = 0
        self.error: str | None = None
        self.future: Future[Written] = Future()


class Writer:
    """Owns one DuckDB connection on its own thread; see the module docstring.

    ``max_pending_rows`` bounds the rows accepted but not yet committed;
    ``max_commit_rows`` bounds one transaction; after ``idle_checkpoint_s``
    without work the WAL is checkpointed into the file. The derived tables
    (otel_threads.derive) follow on their own thread, yielding to ingest for at
    most ``derive_max_lag_s``; `sync` waits for commits and derivation.
    ``on_fork`` is "allow" (forks are stored, and shown as forks) or "reject".
    `close` drains what was accepted, then closes the file; it is idempotent and
    safe before `start`.
    """

    def __init__(
        self,
        path: str,
        *,
        max_pending_rows: int = 262_144,
        max_commit_rows: int = 131_072,
        retry_after_s: float = 1.0,
        idle_checkpoint_s: float = 1.0,
        derive_max_lag_s: float = 5.0,
        on_fork: str = "allow",
        connection_factory: Callable[[str], duckdb.DuckDBPyConnection] = connect,
    ) -> None:
        if max_pending_rows < 1 or max_commit_rows < 1:
            raise ValueError("max_pending_rows and max_commit_rows must be at least 1")
        if on_fork not in FORK_POLICIES:
            raise ValueError(f"on_fork must be one of {FORK_POLICIES}, got {on_fork!r}")
        self.on_fork = on_fork
        self._refused: set[str] = set()  # turn ids refused as forks (on_fork="reject")
        self.path = path
        self.max_pending_rows = max_pending_rows
        self.max_commit_rows = max_commit_rows
        self.retry_after_s = retry_after_s
        self.stats = WriterStats()
        self._connection_factory = connection_factory
        self._con: duckdb.DuckDBPyConnection | None = None
        self._queue: list[_Item] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._dirty = False
        self.idle_checkpoint_s = idle_checkpoint_s
        self.derive_max_lag_s = derive_max_lag_s
        self._derive: DeriveWorker | None = None
        self._last_commit = 0.0
        self.quiet_s = 0.2

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> Writer:
        """Open (and migrate) the file and start the writer thread."""
        if self._thread is not None:
            return self
        self._con = self._connection_factory(self.path)
        # Checkpoints (folding the WAL into the file) run inside a commit and
        # cost more than the commit: let the WAL grow under load and
        # checkpoint when idle instead (see _take). Durability is the WAL's.
        self._con.execute(f"SET checkpoint_threshold = '{WAL_CHECKPOINT_THRESHOLD}'")
        self._refused = {r[0] for r in self._con.execute(
            "SELECT turn_id FROM rejected_turns").fetchall()}
        if Deriver(self._con).enabled():
            self._derive = DeriveWorker(self._con.cursor(), self.busy, self.derive_max_lag_s)
        self._seq = max(
            self._con.execute(
                "SELECT coalesce(max(ingest_seq), 0) FROM spans UNION ALL "
                "SELECT coalesce(max(ingest_seq), 0) FROM logs"
            ).fetchall()
        )[0]
        self._thread = threading.Thread(target=self._run, name="otel-threads-writer", daemon=True)
        self._thread.start()
        return self

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the same database, for readers in this process."""
        if self._con is None:
            raise RuntimeError("the writer is not started")
        return self._con.cursor()

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything accepted so far, then close the file. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _logger.error("writer did not drain within %ss; closing anyway", timeout)
        if self._derive is not None:
            self._derive.close()
            self._derive = None
        if self._con is not None:
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error:
                _logger.warning("checkpoint at close failed", exc_info=True)
            self._con.close()
            self._con = None

    # -- producers -----------------------------------------------------------------

    def submit(self, kind: str, table: pa.Table) -> Future[Written]:
        """Queue rows for the next commit; the future resolves to `Written` after it.

        Raises `Overloaded` when the queue is full and RuntimeError once closing.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        item = _Item(kind, table)
        with self._cond:
            if self._closing or self._thread is None:
                raise RuntimeError("the writer is not accepting data (not started or closing)")
            pending = self.stats.pending_rows
            if pending and pending + item.rows > self.max_pending_rows:
                self.stats.overloaded += 1
                raise Overloaded(pending, self.max_pending_rows, self.retry_after_s)
            self.stats.pending_rows += item.rows
            self.stats.received[kind] += item.rows
            self._queue.append(item)
            self._cond.notify()
        return item.future

    def write(self, kind: str, table: pa.Table, timeout: float | None = None) -> Written:
        """`submit` and wait for the commit."""
        return self.submit(kind, table).result(timeout)

    # -- the writer thread ---------------------------------------------------------------

    def _take(self, wait_s: float) -> list[_Item] | None:
        """The next group to commit; [] after an idle wait; None once closed and drained."""
        with self._cond:
            if not self._queue and not self._closing and wait_s > 0:
                self._cond.wait(wait_s)
            if not self._queue:
                return None if self._closing else []
            taken, rows = [], 0
            while self._queue and (not taken or rows + self._queue[0].rows <= self.max_commit_rows):
                item = self._queue.pop(0)
                taken.append(item)
                rows += item.rows
            return taken

    def _run(self) -> None:
        while True:
            items = self._take(self.idle_checkpoint_s)
            if items is None:
                return  # closing and drained
            if not items:
                if self._dirty:
                    self._checkpoint()  # idle: fold the WAL into the file
                continue
            for item in self._write(items):
                item.future.set_result(Written(item.rows, item.rejected, item.error))

    def busy(self) -> bool:
        """Rows are waiting for a commit, or the last commit ended under ``quiet_s`` ago
        (exports are arriving): derivation waits for a quiet moment."""
        return (self.stats.pending_rows > 0
                or time.monotonic() - self._last_commit < self.quiet_s)

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is committed and derived."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: not self._queue and self.stats.pending_rows == 0,
                                       timeout):
                return False
        if self._derive is None:
            return True
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._derive.sync(left)

    def _write(self, items: list[_Item]) -> list[_Item]:
        """Commit ``items``; returns those committed (the others' futures have failed)."""
        committed: list[_Item] = []
        try:
            self._commit(items)
            committed = items
        except Exception as exc:
            if len(items) == 1:
                self._fail(items, exc)
            else:  # find the bad one: commit each alone
                for item in items:
                    try:
                        self._commit([item])
                        committed.append(item)
                    except Exception as single_exc:
                        self._fail([item], single_exc)
        finally:
            with self._cond:
                self.stats.pending_rows -= sum(i.rows for i in items)
                self._cond.notify_all()
        return committed

    def _checkpoint(self) -> None:
        assert self._con is not None
        try:
            self._con.execute("CHECKPOINT")
            self._dirty = False
        except duckdb.Error:
            _logger.warning("idle checkpoint failed; DuckDB retries at its WAL threshold",
                            exc_info=True)

    def _fail(self, items: list[_Item], exc: Exception) -> None:
        self.stats.failed_batches += 1
        _logger.error("writing a batch failed: %s", exc)
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)

    def _commit(self, items: list[_Item]) -> None:
        con = self._con
        assert con is not None
        started = time.perf_counter()
        received_at = time.time_ns() // 1000
        by_kind: dict[str, list[_Item]] = {}
        for item in items:
            by_kind.setdefault(item.kind, []).append(item)
        inserted: dict[str, int] = {}
        refused: set[str] = set()
        for item in items:
            item.rejected, item.error = 0, None
        con.execute("BEGIN TRANSACTION")
        try:
            for kind, group in by_kind.items():
                table = pa.concat_tables([i.table for i in group]) if len(group) > 1 else (
                    group[0].table)
                if kind == "spans" and self.on_fork == "reject":
                    table, refused = self._refuse_forks(con, table, group, received_at)
                inserted[kind] = self._insert(con, kind, table, received_at)
            con.execute("COMMIT")
            self._refused |= refused
            self._dirty = True
            self._last_commit = time.monotonic()
            if self._derive is not None:
                self._derive.committed()
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
        self.stats.observe_commit(time.perf_counter() - started)
        for kind, group in by_kind.items():
            rows = sum(i.rows - i.rejected for i in group)
            self.stats.written[kind] += inserted[kind]
            self.stats.duplicates[kind] += rows - inserted[kind]

    def _refuse_forks(self, con: duckdb.DuckDBPyConnection, table: pa.Table,
                      group: list[_Item], received_at_us: int) -> tuple[pa.Table, set[str]]:
        """Drop the spans of forking turns (on_fork="reject"), record the refusals in
        ``rejected_turns`` and on the items; returns the rest and the turns refused."""
        prev = table.column("previous_turn_id")
        forks: list[tuple[str, str, str, str]] = []
        if prev.null_count < table.num_rows:
            seq = pa.array(range(table.num_rows), pa.int64())  # arrival order in the group
            con.register("__batch", table.select(
                ["trace_id", "span_id", "previous_turn_id"]).append_column("ingest_seq", seq))
            try:
                forks = con.execute(_FORKS).fetchall()
            finally:
                con.unregister("__batch")
        refused = self._refused | {span_id for _, span_id, _, _ in forks}
        if not refused:
            return table, set()
        value_set = pa.array(sorted(refused), pa.string())
        drop = pc.fill_null(pc.or_(pc.or_(
            pc.is_in(table.column("span_id"), value_set=value_set),
            pc.is_in(table.column("turn_id"), value_set=value_set)),
            pc.is_in(table.column("parent_span_id"), value_set=value_set)), False)
        if not pc.any(drop).as_py():
            return table, set()
        if forks:
            con.executemany(
                "INSERT INTO rejected_turns VALUES (?, ?, ?, ?, ?)",
                [[t, s, p, a, _EPOCH + dt.timedelta(microseconds=received_at_us)]
                 for t, s, p, a in forks])
        reasons = {s: (p, a) for _, s, p, a in forks}
        start = 0
        for item in group:
            mask = drop.slice(start, item.rows)
            start += item.rows
            item.rejected = pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
            if not item.rejected:
                continue
            dropped = item.table.filter(mask)
            ids = {v for name in ("span_id", "turn_id", "parent_span_id")
                   for v in dropped.column(name).to_pylist() if v}
            notes = [f"turn {turn} names previous turn {p}, which turn {a} already answers"
                     for turn, (p, a) in sorted(reasons.items()) if turn in ids]
            earlier = sorted((ids & self._refused) - reasons.keys())
            if earlier:
                notes.append("spans of turns refused earlier: " + ", ".join(earlier))
            item.error = (f"{item.rejected} spans of forking turns refused (on_fork=reject): "
                          + "; ".join(notes))
        return table.filter(pc.invert(drop)), {s for _, s, _, _ in forks}

    def _insert(self, con: duckdb.DuckDBPyConnection, kind: str, table: pa.Table,
                received_at_us: int) -> int:
        n = table.num_rows
        if n == 0:
            return 0
        seq = pa.array(range(self._seq + 1, self._seq + n + 1), pa.int64())
        table = table.append_column("ingest_seq", seq)
        for name in _JSON_COLUMNS[kind]:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, pa.field(name, _JSON), table.column(i).cast(_JSON))
        bounds = pc.min_max(table.column(_RANGE_COLUMN[kind]))
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is None:  # no times at all: compare against everything
            lo, hi = _FULL_RANGE[kind]
        key = _KEY[kind]
        # span ids (and record ids) are random: all distinct means no duplicates
        unique = pc.count_distinct(table.column(key[-1])).as_py() == n
        source = "__batch" if unique else _DEDUPED_BATCH.format(key=", ".join(key))
        con.register("__batch", table)
        try:
            row = con.execute(
                _INSERT[kind].format(source=source),
                {"received_at": _EPOCH + dt.timedelta(microseconds=received_at_us),
                 "lo": lo, "hi": hi},
            ).fetchone()
            if kind == "spans" and table.column("previous_turn_id").null_count < n:
                con.execute("""
                    INSERT INTO linked_turns
                    SELECT DISTINCT b.trace_id, b.span_id, b.previous_turn_id, b.thread_id,
                           b.start_time
                    FROM __batch b
                    WHERE b.previous_turn_id IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM linked_turns l
                                      WHERE l.trace_id = b.trace_id AND l.turn_id = b.span_id)
                """)
            if self._derive is not None:  # re-derive these traces (same transaction)
                con.execute("INSERT INTO derive_queue SELECT DISTINCT trace_id FROM __batch "
                            "WHERE trace_id IS NOT NULL")
        finally:
            con.unregister("__batch")
        self._seq += n
        return int(row[0]) if row else 0
