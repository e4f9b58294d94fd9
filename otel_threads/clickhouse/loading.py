"""Reading a scope of traces back from ClickHouse: what a batch of the derive worker, or
one thread's detail, needs derived together.

The traces of a thread come from ``thread_traces`` (the derived table that lists them per
generation); the traces a turn's link reaches, either way, from ``otel_threads_links``
and ``turns``; their spans from ``otel_traces`` by trace id within the traces' time
bounds (``otel_traces_trace_id_ts``: the exporter's own lookup table), and their log
records from ``otel_logs``. Rows come back as the DuckDB store's (SPAN_SCHEMA,
LOG_SCHEMA), through `otel_threads.clickhouse.exporter_rows`. A column an older exporter's
table lacks (``otel_logs.EventName`` before the exporter wrote it) is read as its type's
default (an empty string): the event name then comes from the ``event.name`` attribute.
"""

from __future__ import annotations

import pyarrow as pa

from otel_threads.clickhouse.engine import Engine, quote_name
from otel_threads.clickhouse.exporter_rows import from_exporter_logs, from_exporter_spans
from otel_threads.clickhouse.exporter_schema import (
    LOG_TYPES,
    LOGS_TABLE,
    TRACE_TYPES,
    TRACES_TABLE,
)
from otel_threads.otlp.tables import LOG_SCHEMA, SPAN_SCHEMA

__all__ = ["SCOPE_ROUNDS", "Loader"]

#: Rounds of widening a scope along threads and links.
SCOPE_ROUNDS = 64


class Loader:
    """Reads scopes of traces from one ClickHouse database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._selects: dict[str, str] = {}

    def _select(self, table: str) -> str:
        """The columns the exporter writes to ``table``, as a SELECT list: those the table
        lacks (an older exporter's) as their type's default."""
        if table not in self._selects:
            have = {
                r[0]
                for r in self.engine.rows(
                    "SELECT name FROM system.columns "
                    "WHERE database = currentDatabase() AND table = {t:String}",
                    {"t": table},
                )
            }
            types = TRACE_TYPES if table == TRACES_TABLE else LOG_TYPES
            self._selects[table] = ", ".join(
                name if name in have else f"defaultValueOfTypeName('{kind}') AS {quote_name(name)}"
                for name, kind in types
            )
        return self._selects[table]

    def threads_of(self, traces: list[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for trace_id, thread_id in self.engine.rows(
            "SELECT DISTINCT trace_id, thread_id FROM thread_traces "
            "WHERE trace_id IN {traces:Array(String)}",
            {"traces": traces},
        ):
            out.setdefault(trace_id, set()).add(thread_id)
        return out

    def scope(
        self, traces: set[str], threads: set[str], held: frozenset[str] | set[str] = frozenset()
    ) -> tuple[pa.Table, pa.Table]:
        """The spans and logs of ``traces``, of every trace of ``threads``, and of what
        their links reach, widened a round at a time until nothing new comes; but for the
        threads the caller ``held`` whole already, which a link does not read again."""
        loaded: set[str] = set()
        seen_threads: set[str] = set(held)
        span_parts: list[pa.Table] = []
        todo_traces, todo_threads = set(traces), set(threads)
        for _ in range(SCOPE_ROUNDS):
            if todo_threads:
                todo_traces |= self.traces_of(sorted(todo_threads))
                seen_threads |= todo_threads
            todo_traces -= loaded
            if not todo_traces:
                break
            spans = self.spans(sorted(todo_traces))
            loaded |= todo_traces
            span_parts.append(spans)
            turn_ids = {t for t in spans.column("turn_id").to_pylist() if t}
            previous = {t for t in spans.column("previous_turn_id").to_pylist() if t}
            todo_traces = self.linked(turn_ids, previous)
            todo_threads = self.threads_of_turns(sorted(previous)) - seen_threads
        spans = pa.concat_tables(span_parts) if span_parts else SPAN_SCHEMA.empty_table()
        return spans, self.logs(sorted(loaded))

    def traces_of(self, threads: list[str]) -> set[str]:
        return {
            r[0]
            for r in self.engine.rows(
                "SELECT DISTINCT trace_id FROM thread_traces "
                "WHERE thread_id IN {threads:Array(String)}",
                {"threads": threads},
            )
        }

    def threads_of_turns(self, turn_ids: list[str]) -> set[str]:
        if not turn_ids:
            return set()
        return {
            r[0]
            for r in self.engine.rows(
                "SELECT DISTINCT thread_id FROM turns WHERE turn_id IN {ids:Array(String)}",
                {"ids": turn_ids},
            )
        }

    def linked(self, turn_ids: set[str], previous: set[str]) -> set[str]:
        """Traces whose turns name one of ``turn_ids``, and traces of the linked turns
        ``previous`` names (when those are linked turns themselves)."""
        if not turn_ids and not previous:
            return set()
        return {
            r[0]
            for r in self.engine.rows(
                "SELECT DISTINCT TraceId FROM otel_threads_links "
                "WHERE PreviousTurnId IN {turns:Array(String)} "
                "OR SpanId IN {previous:Array(String)}",
                {"turns": sorted(turn_ids), "previous": sorted(previous)},
            )
        }

    def spans(self, traces: list[str]) -> pa.Table:
        bounds = self.engine.rows(
            "SELECT toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)) "
            "FROM otel_traces_trace_id_ts WHERE TraceId IN {traces:Array(String)}",
            {"traces": traces},
        )
        lo, hi = bounds[0] if bounds else (None, None)
        where = "TraceId IN {traces:Array(String)}"
        params: dict = {"traces": traces}
        if lo is not None and hi is not None:
            # (the lookup table keeps whole seconds: widen by one each way)
            where += (
                " AND Timestamp >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC')"
                " AND Timestamp < fromUnixTimestamp64Nano({hi:Int64}, 'UTC')"
            )
            params |= {"lo": (int(lo) - 1) * 10**9, "hi": (int(hi) + 2) * 10**9}
        rows = self.engine.query(
            f"SELECT {self._select(TRACES_TABLE)} FROM {TRACES_TABLE} WHERE {where}", params
        )
        return from_exporter_spans(rows)

    def logs(self, traces: list[str]) -> pa.Table:
        if not traces:
            return LOG_SCHEMA.empty_table()
        rows = self.engine.query(
            f"SELECT {self._select(LOGS_TABLE)} FROM {LOGS_TABLE} "
            "WHERE TraceId IN {traces:Array(String)}",
            {"traces": traces},
        )
        return from_exporter_logs(rows)
