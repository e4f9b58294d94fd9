"""The API listener: the threads query, read-only SQL, /healthz and /metrics.

Reads run on their own cursors of the collector's database, next to the writer.
`/sql` runs one statement in a READ ONLY transaction on a database whose
external access (files, ATTACH, extensions) is switched off: the database
refuses writes, we do not parse SQL to guess them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import json
import threading
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

import duckdb

from collector.httpbase import BaseHandler
from otel_threads.query import ThreadsQueryReq, query_thread, query_threads
from otel_threads.writer import LATENCY_BUCKETS

if TYPE_CHECKING:
    from collector.app import Collector

__all__ = ["ApiHandler", "render_metrics"]


def render_metrics(collector: Collector) -> str:
    """Counters and gauges of the receivers and the writer, in Prometheus text format."""
    w = collector.writer.stats
    ingest = collector.ingest
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    kinds = ("spans", "logs")
    metric("otel_threads_received_total", "counter", "Rows decoded and handed to the writer.",
           [(f'{{signal="{k}"}}', w.received[k]) for k in kinds])
    metric("otel_threads_rejected_total", "counter",
           "Rows rejected through partial_success (e.g. malformed ids).",
           [('{signal="spans"}', ingest.rejected["traces"]),
            ('{signal="logs"}', ingest.rejected["logs"])])
    metric("otel_threads_invalid_requests_total", "counter",
           "Requests refused as undecodable (INVALID_ARGUMENT / 400).",
           [("", ingest.invalid_requests)])
    metric("otel_threads_written_total", "counter", "Rows committed to the database.",
           [(f'{{signal="{k}"}}', w.written[k]) for k in kinds])
    metric("otel_threads_duplicates_total", "counter",
           "Redelivered rows that were already stored and dropped.",
           [(f'{{signal="{k}"}}', w.duplicates[k]) for k in kinds])
    metric("otel_threads_overloaded_total", "counter",
           "Exports answered UNAVAILABLE / 503 because the writer queue was full.",
           [("", w.overloaded + ingest.overloaded)])
    metric("otel_threads_failed_batches_total", "counter", "Commits that failed.",
           [("", w.failed_batches)])
    metric("otel_threads_queue_rows", "gauge", "Rows waiting for a commit.",
           [("", w.pending_rows)])
    metric("otel_threads_inflight_bytes", "gauge", "Request bytes being decoded or written.",
           [("", ingest.inflight_bytes)])
    buckets = [(f'{{le="{b:g}"}}', n) for b, n in zip(LATENCY_BUCKETS, w.commit_buckets,
                                                       strict=True)]
    buckets.append(('{le="+Inf"}', w.commits))
    lines.append("# HELP otel_threads_commit_seconds Time to write and commit one group.")
    lines.append("# TYPE otel_threads_commit_seconds histogram")
    lines.extend(f"otel_threads_commit_seconds_bucket{lb} {n}" for lb, n in buckets)
    lines.append(f"otel_threads_commit_seconds_sum {w.commit_seconds_sum:g}")
    lines.append(f"otel_threads_commit_seconds_count {w.commits}")
    return "\n".join(lines) + "\n"


#: Most rows `/sql` returns; the answer says when it cut.
SQL_MAX_ROWS = 10_000
#: Longest a `/sql` statement may run before it is interrupted.
SQL_TIMEOUT_S = 30.0
#: Longest a read waits for the derived views to catch up with what was acknowledged.
READ_SYNC_S = 2.0


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def run_readonly_sql(con: duckdb.DuckDBPyConnection, sql: str,
                     max_rows: int = SQL_MAX_ROWS, timeout_s: float = SQL_TIMEOUT_S,
                     ) -> dict[str, Any]:
    """One statement in a READ ONLY transaction; ValueError for anything refused."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ValueError(f"SQL does not parse: {exc}") from None
    if len(statements) != 1:
        raise ValueError(f"send exactly one SQL statement, got {len(statements)}")
    timer = threading.Timer(timeout_s, con.interrupt)
    con.execute("BEGIN TRANSACTION READ ONLY")
    timer.start()
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(max_rows + 1)
    except duckdb.InterruptException:
        raise ValueError(f"the query ran longer than {timeout_s:g}s and was stopped") from None
    except duckdb.Error as exc:
        raise ValueError(str(exc)) from None
    finally:
        timer.cancel()
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
    return {"columns": columns, "rows": [list(r) for r in rows[:max_rows]],
            "truncated": len(rows) > max_rows}


class ApiHandler(BaseHandler):
    collector: Collector  # set by HttpListener
    open_paths = frozenset({"/healthz"})

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload, default=_jsonable, ensure_ascii=False).encode()
        self.reply(status, body, "application/json")

    def _json_body(self) -> tuple[bool, Any]:
        """(True, parsed body), or (False, None) after replying with the error."""
        body = self.read_body(1 << 20)
        if body is None:
            return False, None
        try:
            return True, json.loads(body or b"null")
        except ValueError as exc:
            self._send(400, {"error": f"the body is not JSON: {exc}"})
            return False, None

    def do_GET(self) -> None:
        if not self.authorized():
            return
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, {"status": "ok", "db": self.collector.config.db})
        elif path == "/metrics":
            self.reply(200, render_metrics(self.collector).encode(),
                       "text/plain; version=0.0.4; charset=utf-8")
        elif path.startswith("/threads/") and len(path) > len("/threads/"):
            thread_id = urllib.parse.unquote(path[len("/threads/"):])
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            unknown = set(query) - {"through_turn"}
            if unknown:
                self._send(400, {"error": f"unknown parameter(s) {sorted(unknown)}; "
                                          "GET /threads/{id} takes through_turn"})
                return
            through = query.get("through_turn", [None])[-1]
            self.collector.writer.sync(READ_SYNC_S)  # read what was acknowledged
            try:
                with self.collector.writer.cursor() as con:
                    detail = query_thread(con, thread_id, through)
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            if detail is None:
                self._send(404, {"error": f"no thread {thread_id!r}"})
            else:
                self._send(200, detail)
        else:
            self._send(404, {"error": f"no such endpoint {path}"})

    def do_POST(self) -> None:
        if not self.authorized():
            return
        path = self.path.split("?", 1)[0]
        if path not in ("/threads/query", "/sql"):
            self._send(404, {"error": f"no such endpoint {path}"})
            return
        ok, body = self._json_body()
        if not ok:
            return
        self.collector.writer.sync(READ_SYNC_S)  # read what was acknowledged
        try:
            with self.collector.writer.cursor() as con:
                if path == "/threads/query":
                    res = query_threads(con, ThreadsQueryReq.from_json(body))
                    payload: Any = {"threads": res.threads, "total": res.total}
                else:
                    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
                        raise ValueError('send {"sql": "SELECT ..."}')
                    payload = run_readonly_sql(con, body["sql"])
        except (ValueError, TypeError) as exc:
            self._send(400, {"error": str(exc)})
            return
        self._send(200, payload)
