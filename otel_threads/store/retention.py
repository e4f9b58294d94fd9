"""Retention: old threads are deleted whole, so a store that runs for months stays bounded.

`prune` deletes, in one transaction, everything of the threads whose last activity
(``threads.last_updated``) is before a time, and every trace that belongs to no live
thread and started before it:

- a trace whose spans all belong to old threads or to none, all started before the
  time: all its rows (spans, log records, derived rows, links, queue and error rows);
- a trace that also holds a live thread (one request serving two threads): only the
  old threads' spans and their log records; the live thread is never cut;
- the old threads' turns, transcript and thread rows, their annotations and evaluator
  runs (and evaluations that named only a response id, as old).

Spans that arrived but are not derived yet are never deleted (they are new). DuckDB
reuses the space of deleted rows once the file is checkpointed, so a store that
prunes as much as it takes in stops growing. `otel-threads collect --retention 30d`
prunes on a schedule; `otel-threads prune --before T` on a file nobody holds.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import duckdb

from otel_threads.json_out import parse_utc
from otel_threads.store.trace_numbers import generations
from otel_threads.store.turn_keys import TURN_KEYS

__all__ = ["PruneResult", "parse_before", "parse_duration", "prune"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s``: ValueError for anything else."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"expected a duration like 30d, 12h or 90m, got {text!r}")
    try:
        return dt.timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    except OverflowError:
        raise ValueError(f"the duration {text!r} is too long") from None


def parse_before(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A time (ISO 8601; UTC unless it names a zone) or an age (``30d``: now minus it),
    as naive UTC. ValueError saying both forms for anything else."""
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        return now - parse_duration(text)
    except OverflowError:  # an age before year 1
        raise ValueError(f"the age {text!r} reaches before the year 1") from None
    except ValueError:
        pass
    try:
        return parse_utc(text)
    except ValueError:
        raise ValueError(
            f"expected a time like 2026-11-01T00:00 or an age like 30d, got {text!r}"
        ) from None


@dataclass(frozen=True)
class PruneResult:
    """What one `prune` deleted."""

    threads: int
    traces: int
    spans: int
    logs: int


def prune(con: duckdb.DuckDBPyConnection, before: dt.datetime) -> PruneResult:
    """Delete the threads last active before ``before`` (naive UTC), whole, and the
    traces of no live thread started before it. One transaction; returns the counts."""
    con.execute("BEGIN TRANSACTION")
    try:
        result = _prune(con, before)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in ("_old_threads", "_live_traces", "_dead_traces", "_old_spans", "_gone_traces"):
            con.execute(f"DROP TABLE IF EXISTS temp.{name}")
    return result


def _prune(con: duckdb.DuckDBPyConnection, before: dt.datetime) -> PruneResult:
    con.execute(
        "CREATE TEMP TABLE _old_threads AS SELECT thread_id FROM threads_mat "
        "WHERE last_updated < ?",
        [before],
    )
    # a trace lives on while it holds a span of a live thread, or a span started since
    con.execute(
        """
        CREATE TEMP TABLE _live_traces AS
        SELECT DISTINCT trace_id FROM span_threads_mat
        WHERE thread_id IS NOT NULL AND thread_id NOT IN (SELECT thread_id FROM _old_threads)
        UNION
        SELECT DISTINCT trace_id FROM spans_raw
        WHERE start_time >= ? OR start_time IS NULL
        UNION
        SELECT DISTINCT trace_id FROM spans_raw s
        WHERE NOT EXISTS (SELECT 1 FROM span_threads_mat t
                          WHERE t.trace_id = s.trace_id AND t.span_id = s.span_id)""",
        [before],
    )
    con.execute("""
        CREATE TEMP TABLE _dead_traces AS
        SELECT DISTINCT trace_id FROM spans_raw
        WHERE trace_id NOT IN (SELECT trace_id FROM _live_traces)""")
    # old threads' spans in traces that live on (a request that served two threads)
    con.execute("""
        CREATE TEMP TABLE _old_spans AS
        SELECT trace_id, span_id FROM span_threads_mat
        WHERE thread_id IN (SELECT thread_id FROM _old_threads)
          AND trace_id IN (SELECT trace_id FROM _live_traces)""")
    dead = "trace_id IN (SELECT trace_id FROM _dead_traces)"
    old = "(trace_id, span_id) IN (SELECT (trace_id, span_id) FROM _old_spans)"
    spans = _count_deleted(con, f"DELETE FROM spans_raw WHERE {dead} OR {old}")
    logs = _count_deleted(con, f"DELETE FROM logs WHERE {dead} OR {old}")
    for table in ("span_threads_mat", "message_keys_mat"):
        con.execute(f"DELETE FROM {table} WHERE {dead} OR {old}")
    for table in ("thread_attributes_mat", "call_responses_mat", "annotations_mat"):
        con.execute(
            f"DELETE FROM {table} WHERE {dead} OR thread_id IN (SELECT thread_id FROM _old_threads)"
        )
    for table in ("linked_turns", "rejected_turns"):
        con.execute(
            f"DELETE FROM {table} WHERE {dead} OR (trace_id, turn_id) IN "
            "(SELECT (trace_id, span_id) FROM _old_spans)"
        )
    for table in ("derive_queue", "derive_errors"):
        con.execute(f"DELETE FROM {table} WHERE {dead}")
    for table in (
        "turns_mat",
        "transcript_mat",
        "threads_mat",
        "thread_tails_mat",
        "thread_versions",
        "annotation_records",
        "evaluation_runs",
    ):
        con.execute(f"DELETE FROM {table} WHERE thread_id IN (SELECT thread_id FROM _old_threads)")
    for table in TURN_KEYS.tables(con):  # (otel_threads.store.turn_keys)
        con.execute(f"DELETE FROM {table} WHERE thread_id IN (SELECT thread_id FROM _old_threads)")
    # log records of no stored span (none sent, or gone), older than the time
    old_logs = """
        FROM logs
        WHERE coalesce(time, make_timestamp(observed_time_unix_nano // 1000)) < ?
          AND (trace_id IS NULL OR trace_id NOT IN (SELECT trace_id FROM spans_raw))"""
    con.execute(
        f"CREATE TEMP TABLE _gone_traces AS SELECT trace_id FROM _dead_traces "
        f"UNION SELECT trace_id {old_logs} AND trace_id IS NOT NULL",
        [before],
    )
    logs += _count_deleted(con, f"DELETE {old_logs}", [before])
    # the numbers of the traces gone (otel_threads.store.trace_numbers)
    for table in generations(con):
        con.execute(f"""
            DELETE FROM {table}
            WHERE trace_id IN (SELECT trace_id FROM _gone_traces)
              AND trace_id NOT IN (SELECT trace_id FROM logs WHERE trace_id IS NOT NULL)
              AND trace_id NOT IN (SELECT trace_id FROM spans_raw)""")
    # evaluations by response id as old (their log records went with the others above)
    con.execute("DELETE FROM response_evaluations WHERE created_at < ?", [before])
    threads = con.execute("SELECT count(*) FROM _old_threads").fetchall()[0][0]
    traces = con.execute("SELECT count(*) FROM _dead_traces").fetchall()[0][0]
    return PruneResult(threads=int(threads), traces=int(traces), spans=spans, logs=logs)


def _count_deleted(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    return int(con.execute(sql, params or []).fetchall()[0][0])
