"""One batch into the store: the insert that drops redeliveries, and what goes with it.

Each row takes its trace's number (otel_threads.store.trace_numbers), given now to a trace
the store has not seen.

A span whose (trace_id, span_id) is already stored, or a log record whose record_id
is, is not inserted again; the lookup is limited to rows with the batch's start time
range, which DuckDB's zone maps prune (a redelivered span has exactly the start
time it had). The spans of a trace numbered by this very batch are not looked up: no
span of it is stored (most spans, under load: a trace's spans often come in one
request). In the same statement sequence (the caller's
transaction) the batch's linked turns are recorded and its traces queued for
derivation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import weakref

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from otel_threads.store.forks import RECORD_LINKS
from otel_threads.store.trace_numbers import SeenTraces, number

__all__ = ["CONTENT_BYTES", "EPOCH", "insert_batch"]

# Rows of the batch that are not stored yet. `{source}` is the batch itself, or
# the batch with in-batch duplicates removed (a window over the batch costs more
# than the rest of the insert, so it is used only when the batch has duplicates).
_INSERT = {
    "spans": """
        INSERT INTO spans_raw BY NAME
        SELECT b.*
        FROM {source} b
        WHERE NOT EXISTS (
            SELECT 1 FROM spans_raw s
            WHERE s.start_time_unix_nano BETWEEN $lo AND $hi
              AND s.trace_id = b.trace_id AND s.span_id = b.span_id)
    """,
    "logs": """
        INSERT INTO logs BY NAME
        SELECT b.*
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
_JSON_COLUMNS = {
    "spans": ("attributes", "events", "links", "resource_attributes", "scope_attributes"),
    "logs": ("body", "attributes", "resource_attributes"),
}
_JSON = pa.json_(pa.string())
_DEDUPED_BATCH = (
    "(SELECT * FROM __batch QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY ingest_seq) = 1)"
)
_RANGE_COLUMN = {"spans": "start_time_unix_nano", "logs": "time"}
_FULL_RANGE = {
    "spans": (-(2**63), 2**63 - 1),
    "logs": (dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)),
}
#: The bytes of content of a stored span or log record: what parsing its trace reads (span
#: attributes and events, log bodies and attributes). The queue counts them per commit
#: (`_queued`) and a refresh bounds its batch and its parse chunks by them
#: (`Scoped._content_bytes` for traces the queue did not count).
_CONTENT_COLUMNS = {"spans": ("attributes", "events"), "logs": ("body", "attributes")}
CONTENT_BYTES = {
    kind: " + ".join(f"coalesce(strlen({c}::VARCHAR), 0)" for c in columns)
    for kind, columns in _CONTENT_COLUMNS.items()
}


def _queued(kind: str, table: pa.Table) -> pa.Table:
    """The batch's traces for derive_queue, with their numbers (which spare a refresh
    looking them up), the thread their spans name, the first and last ingest_seq of their
    spans in it (a trace never derived has every span between its commits' first and
    last), and the bytes of content they brought (which bound a refresh's batch);
    computed here rather than by a GROUP BY in the database, which cost a commit half as
    much as inserting its spans."""
    size = None
    for name in _CONTENT_COLUMNS[kind]:
        column = pc.fill_null(pc.binary_length(table.column(name)), 0).cast(pa.int64())
        size = column if size is None else pc.add(size, column)
    columns = {"trace_id": table.column("trace_id"), "bytes": size, "n": table.column("trace_n")}
    aggregates = [("bytes", "sum"), ("n", "max")]
    if kind == "spans":
        columns |= {"thread_id": table.column("thread_id"), "seq": table.column("ingest_seq")}
        aggregates += [("thread_id", "max"), ("seq", "min"), ("seq", "max")]
    rows = pa.table(columns).filter(pc.is_valid(columns["trace_id"]))
    queued = rows.group_by("trace_id", use_threads=False).aggregate(aggregates)
    names = {"bytes_sum": "bytes", "n_max": "trace_n", "thread_id_max": "thread_id"}
    names |= {"seq_min": "first_seq", "seq_max": "last_seq"}
    return queued.rename_columns([names.get(c, c) for c in queued.column_names])


#: Evaluation results (the GenAI event gen_ai.evaluation.result) that name no span, only
#: the response they judge (gen_ai.response.id): kept apart, so that deriving the trace of
#: the call with that response id finds them (sql/derive_annotations.sql), and the trace
#: of a call already derived is queued again. `{source}` as for `_INSERT`.
_EVALUATION = "gen_ai.evaluation.result"
_BY_RESPONSE = """
    INSERT INTO response_evaluations
    SELECT record_id, a ->> 'gen_ai.response.id', a ->> 'gen_ai.evaluation.name',
           a ->> 'gen_ai.evaluation.score.label',
           TRY_CAST(a ->> 'gen_ai.evaluation.score.value' AS DOUBLE),
           a ->> 'gen_ai.evaluation.explanation', service_name,
           coalesce(time, make_timestamp(observed_time_unix_nano // 1000),
                    $received_at::TIMESTAMP)
    FROM (SELECT b.*, CASE WHEN json_type(b.body) = 'OBJECT'
                            AND b.attributes ->> 'gen_ai.response.id' IS NULL
                           THEN b.body ELSE b.attributes END AS a
          FROM {source} b
          WHERE b.event_name = 'gen_ai.evaluation.result' AND b.span_id IS NULL) b
    WHERE a ->> 'gen_ai.response.id' IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM response_evaluations r WHERE r.record_id = b.record_id)
    RETURNING response_id
"""
_QUEUE_RESPONSES = (
    "INSERT INTO derive_queue (trace_id) SELECT DISTINCT trace_id FROM call_responses_mat "
    "WHERE response_id = ANY(?::VARCHAR[])"
)
#: Stored times are naive UTC.
EPOCH = dt.datetime(1970, 1, 1)


def insert_batch(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    table: pa.Table,
    first_seq: int,
    received_at_us: int,
    queue_derive: bool,
    seen: SeenTraces | None = None,
) -> int:
    """Insert the rows of ``table`` not stored yet, numbering them ``ingest_seq`` from
    ``first_seq``; returns how many were inserted. ``seen``: the writer's filter of the
    traces numbered (otel_threads.store.trace_numbers.SeenTraces)."""
    n = table.num_rows
    if n == 0:
        return 0
    table = table.append_column("ingest_seq", pa.array(np.arange(first_seq, first_seq + n)))
    received = pa.array(np.full(n, received_at_us, "datetime64[us]"))
    table = table.append_column("received_at", received)
    table, fresh = number(con, table, seen)  # (fresh: the rows of traces numbered now)
    queued = _queued(kind, table) if queue_derive else None
    for name in _JSON_COLUMNS[kind]:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, pa.field(name, _JSON), table.column(i).cast(_JSON))
    key = _KEY[kind]
    # span ids (and record ids) are random: all distinct means no duplicates
    unique = pc.count_distinct(table.column(key[-1])).as_py() == n
    source = "__batch" if unique else _DEDUPED_BATCH.format(key=", ".join(key))
    known, new = table, None
    if kind == "spans" and unique and fresh is not None:
        if pc.sum(fresh).as_py() == n:
            known, new = None, table
        else:
            known, new = table.filter(pc.invert(fresh)), table.filter(fresh)
            source = "__known"
    registered: list[str] = []

    def register(name: str, rows: pa.Table) -> None:
        con.register(name, rows)
        registered.append(name)

    try:
        inserted = 0
        if new is not None:
            _append(con, "spans_raw", new)
            inserted += new.num_rows
        if known is not None:
            register("__batch", table)
            if new is not None:
                register("__known", known)
            bounds = pc.min_max(known.column(_RANGE_COLUMN[kind]))
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            if lo is None:  # no times at all: compare against everything
                lo, hi = _FULL_RANGE[kind]
            row = con.execute(_INSERT[kind].format(source=source), {"lo": lo, "hi": hi}).fetchone()
            inserted += int(row[0]) if row else 0
        if kind == "spans" and table.column("previous_turn_id").null_count < n:
            if "__batch" not in registered:
                register("__batch", table)
            con.execute(RECORD_LINKS)
        if queued is not None and queued.num_rows:  # derive these traces (same transaction)
            _append(con, "derive_queue", queued)
        if kind == "logs" and pc.any(pc.equal(table.column("event_name"), _EVALUATION)).as_py():
            _by_response(con, source, received_at_us, queue_derive)
    finally:
        # (after a failed statement the transaction is aborted and unregistering fails
        # too: its error would hide the first one, an out-of-memory the writer retries;
        # the next batch's register replaces the view anyway)
        for name in registered:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
    return inserted


#: The columns of the tables `_append` inserts into, per connection, in their order.
_COLUMNS: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[str, list[str]]] = (
    weakref.WeakKeyDictionary()
)


def _append(con: duckdb.DuckDBPyConnection, name: str, rows: pa.Table) -> None:
    """Insert every row of ``rows`` into the table ``name``, by column name (null in a
    column of the table that ``rows`` lacks), without making it a view: a commit
    registered and dropped one per table, a catalog change each, and the INSERT through
    it cost twice the insert of the relation (`from_arrow`)."""
    columns = _COLUMNS.setdefault(con, {})
    if name not in columns:
        columns[name] = con.table(name).columns
    order = columns[name]
    have = set(rows.column_names)
    if extra := have.difference(order):
        raise ValueError(f"{name} has no column {sorted(extra)}")
    n = rows.num_rows
    arrays = [rows.column(c) if c in have else pa.nulls(n) for c in order]
    con.from_arrow(pa.table(arrays, names=order)).insert_into(name)


def _by_response(
    con: duckdb.DuckDBPyConnection, source: str, received_at_us: int, queue_derive: bool
) -> None:
    """Keep the batch's evaluation results that name only a response (`_BY_RESPONSE`) and
    queue the traces of the calls they judge, when those are derived already."""
    responses = con.execute(
        _BY_RESPONSE.format(source=source),
        {"received_at": EPOCH + dt.timedelta(microseconds=received_at_us)},
    ).fetchall()
    if responses and queue_derive:
        con.execute(_QUEUE_RESPONSES, [sorted({r[0] for r in responses})])
