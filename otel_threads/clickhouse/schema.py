"""What otel-threads adds to a ClickHouse database beside the exporter's tables.

- ``otel_threads_arrivals``: one row per trace per insert into ``otel_traces`` or
  ``otel_logs`` (two materialized views write it), with the time it arrived and a
  *hint*: a thread id one of its spans carries (empty when none does). The derive
  workers read it past their watermark; the hint picks the worker (`owner`).
- ``otel_threads_links``: the spans that name a previous turn
  (``otel_threads.previous_turn_id``), so a worker finds the traces a turn's link reaches,
  and the ones that wait on a turn, without scanning ``otel_traces``.
- ``otel_threads_<view>_gen`` for each public view (`VIEWS`): the view's rows of each
  thread as one worker derived them, a generation at a time (``gen``), and
  ``otel_threads_thread_gens`` the generations written in full. The public views
  (``threads``, ``turns``, ...) read each thread's latest generation: a worker writes a
  thread's rows first and its generation last, so readers see a thread's old rows or its
  new ones, never a mix, and rows of a worker that died before the end are never read.
  "Latest" is by the arrival time of what the worker read, then the generation, so a
  worker working from older inputs cannot win over one that saw newer ones.
- ``otel_threads_thread_traces_gen``: which traces make each thread (with their time
  bounds), per generation: what a worker loads to derive a thread again. For the views
  whose rows belong to one trace (`PER_TRACE`: llm calls, messages, spans' threads), a
  generation does not write every trace's rows again: each trace's row here names its
  *piece*, the generation whose rows of those views are that trace's (the one that
  last changed them), so a new turn of a long thread writes the new turn's rows, not
  the thread's.
- ``otel_threads_watermarks``: how far each shard's worker has derived.

The columns of the derived tables are the DuckDB views' own (`view_columns`), so the
two stores cannot drift apart.
"""

from __future__ import annotations

import functools

import duckdb

from otel_threads.clickhouse.engine import Engine, quote_name
from otel_threads.otlp.values import PREVIOUS_TURN_ID_KEY, THREAD_ID_KEYS

__all__ = ["PER_TRACE", "VIEWS", "init_schema", "schema_statements", "view_columns"]

#: The public views a worker derives, each with the columns that order its rows within a
#: thread's generation.
VIEWS: dict[str, tuple[str, ...]] = {
    "threads": (),
    "turns": ("turn_id",),
    "transcript": ("seq",),
    "llm_calls": ("trace_id", "span_id"),
    "messages": ("trace_id", "span_id", "direction", "position"),
    "span_threads": ("trace_id", "span_id"),
    "annotations": ("annotation_id",),
    # (the hashed attribute values of each trace of a thread, which the threads filters
    # `attributes`, `tool` and `service_name` read)
    "thread_attributes": ("trace_id",),
}

#: The views whose rows of a thread are each one trace's, derived from that trace's spans,
#: log records and their thread/turn resolution alone: written per trace (the traces'
#: pieces, see the module docstring). (The threads filters read ``thread_attributes``,
#: which stays whole: its read needs no list of pieces.)
PER_TRACE = ("llm_calls", "messages", "span_threads")

_TYPES = {
    "VARCHAR": "String",
    "JSON": "String",
    "BIGINT": "Int64",
    "HUGEINT": "Int64",
    "INTEGER": "Int32",
    "DOUBLE": "Float64",
    "BOOLEAN": "Bool",
    "UBIGINT": "UInt64",
    "TIMESTAMP": "DateTime64(6, 'UTC')",
}


def _clickhouse_type(duck_type: str) -> str:
    if duck_type.endswith("[]"):
        return f"Array(Nullable({_TYPES[duck_type[:-2]]}))"
    return f"Nullable({_TYPES[duck_type]})"


@functools.lru_cache(maxsize=1)
def view_columns() -> dict[str, list[tuple[str, str]]]:
    """(name, DuckDB type) of each of `VIEWS`' columns, as a DuckDB store has them."""
    from otel_threads.store.schema import apply_views, migrate

    con = duckdb.connect()
    try:
        migrate(con)
        apply_views(con)
        return {
            view: [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]
            for view in VIEWS
        }
    finally:
        con.close()


def _hint() -> str:
    """The arrivals' hint: the first thread id key (in priority order) a span carries."""
    keys = ", ".join(f"nullIf(SpanAttributes['{k}'], '')" for k in THREAD_ID_KEYS)
    return f"coalesce({keys})"


def _ddl() -> list[str]:
    statements = [
        """CREATE TABLE IF NOT EXISTS otel_threads_arrivals (
            TraceId String,
            Hint String,
            ArrivedAt DateTime64(6, 'UTC') DEFAULT now64(6)
        ) ENGINE = MergeTree ORDER BY ArrivedAt""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS otel_threads_arrivals_traces_mv
        TO otel_threads_arrivals (TraceId String, Hint String) AS
        SELECT TraceId, ifNull(any({_hint()}), '') AS Hint
        FROM otel_traces GROUP BY TraceId""",
        """CREATE MATERIALIZED VIEW IF NOT EXISTS otel_threads_arrivals_logs_mv
        TO otel_threads_arrivals (TraceId String, Hint String) AS
        SELECT TraceId, '' AS Hint FROM otel_logs WHERE TraceId != '' GROUP BY TraceId""",
        """CREATE TABLE IF NOT EXISTS otel_threads_links (
            TraceId String,
            SpanId String,
            PreviousTurnId String,
            INDEX idx_span SpanId TYPE bloom_filter(0.01) GRANULARITY 1
        ) ENGINE = ReplacingMergeTree ORDER BY (PreviousTurnId, TraceId, SpanId)""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS otel_threads_links_mv
        TO otel_threads_links (TraceId String, SpanId String, PreviousTurnId String) AS
        SELECT TraceId, SpanId, SpanAttributes['{PREVIOUS_TURN_ID_KEY}'] AS PreviousTurnId
        FROM otel_traces WHERE PreviousTurnId != ''""",
        """CREATE TABLE IF NOT EXISTS otel_threads_thread_gens (
            thread_id String,
            inputs_at DateTime64(6, 'UTC'),
            gen UInt64,
            written_at DateTime64(6, 'UTC') DEFAULT now64(6)
        ) ENGINE = MergeTree ORDER BY (thread_id, gen)""",
        """CREATE TABLE IF NOT EXISTS otel_threads_thread_traces_gen (
            thread_id String,
            gen UInt64,
            trace_id String,
            start_time DateTime64(9, 'UTC'),
            end_time DateTime64(9, 'UTC'),
            piece UInt64,
            INDEX idx_trace trace_id TYPE bloom_filter(0.01) GRANULARITY 1
        ) ENGINE = MergeTree ORDER BY (thread_id, gen, trace_id)""",
        """CREATE TABLE IF NOT EXISTS otel_threads_watermarks (
            shard String,
            watermark DateTime64(6, 'UTC'),
            updated_at DateTime64(6, 'UTC') DEFAULT now64(6)
        ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY shard""",
        """CREATE VIEW IF NOT EXISTS otel_threads_latest AS
        SELECT thread_id, argMax(gen, (inputs_at, gen)) AS gen
        FROM otel_threads_thread_gens GROUP BY thread_id""",
        """CREATE VIEW IF NOT EXISTS otel_threads_latest_traces AS
        SELECT thread_id, trace_id, start_time, end_time, piece
        FROM otel_threads_thread_traces_gen
        WHERE (thread_id, gen) IN (SELECT thread_id, gen FROM otel_threads_latest)""",
        """CREATE VIEW IF NOT EXISTS thread_traces AS
        SELECT thread_id, trace_id, start_time, end_time FROM otel_threads_latest_traces""",
    ]
    for view, order in VIEWS.items():
        columns = ",\n            ".join(
            f"{quote_name(name)} {_clickhouse_type(kind)}" for name, kind in view_columns()[view]
        )
        # (a per-trace view's rows of one trace, all its pieces, lie together)
        lead = ("thread_id", "trace_id", "gen") if view in PER_TRACE else ("thread_id", "gen")
        key = ", ".join((*lead, *(c for c in order if c not in lead)))
        statements.append(
            f"""CREATE TABLE IF NOT EXISTS otel_threads_{view}_gen (
            gen UInt64,
            {columns}
        ) ENGINE = MergeTree ORDER BY ({key}) SETTINGS allow_nullable_key = 1"""
        )
        statements.append(
            f"""CREATE VIEW IF NOT EXISTS {view} AS
        SELECT * EXCEPT (gen) FROM otel_threads_{view}_gen WHERE {latest_rows(view)}"""
        )
    return statements


def latest_rows(view: str) -> str:
    """The condition on a row of ``otel_threads_<view>_gen`` that it is in its thread's
    latest generation: of the generation itself, or for a `PER_TRACE` view, of the piece
    that generation names for the row's trace."""
    if view in PER_TRACE:
        return (
            "(thread_id, trace_id, gen) IN "
            "(SELECT thread_id, trace_id, piece FROM otel_threads_latest_traces)"
        )
    return "(thread_id, gen) IN (SELECT thread_id, gen FROM otel_threads_latest)"


def schema_statements(database: str) -> list[str]:
    """What `init_schema` runs in ``database``: the exporter's tables (``create_schema``),
    then otel-threads' own (names unqualified: they run in the database in use)."""
    from otel_threads.clickhouse.exporter_schema import exporter_ddl

    return [*exporter_ddl(database), *_ddl()]


def init_schema(engine: Engine) -> None:
    """Create what the exporter would (``create_schema``) and what otel-threads adds, where
    missing (each statement is ``IF NOT EXISTS``: running it again changes nothing)."""
    for statement in schema_statements(engine.database):
        engine.command(statement)
