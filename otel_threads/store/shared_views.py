"""`SharedViews`: the LLM calls and messages of a refresh's scope, parsed once for all
the derived views, a chunk of traces at a time, and kept per trace for the next refresh
(otel_threads.store.derive)."""

from __future__ import annotations

import re

from otel_threads.store.scoped import Scoped
from otel_threads.store.sqlfiles import sql_files

__all__ = ["KEPT", "PARSE_CHUNK_BYTES", "PARSE_MEMORY_RATIO", "SharedViews"]

#: Views that several derived tables read: evaluated once per refresh, into TEMP
#: tables of the same name (in dependency order: the later ones read the earlier).
_SHARED_VIEWS = ("genai_llm_spans", "genai_spans", "llm_calls", "messages")
#: What the derived views read of them, kept per trace in ``<view>_mat`` (migration
#: 0009) with ``parsed_traces``: a refresh parses only the traces not parsed before.
KEPT = ("llm_calls", "messages")
#: The LLM calls and messages of a refresh's scope are parsed this many bytes of content
#: at a time (at least one trace), so the memory parsing takes follows the chunk rather
#: than the thread: a thread of huge calls costs its texts, not many copies of them.
#: Parsing holds about 60 times the JSON it reads (DuckDB's JSON functions copy each
#: intermediate value), so a chunk is also at most 1/`PARSE_MEMORY_RATIO` of DuckDB's
#: memory_limit: under a small limit the chunks are smaller, not set aside.
PARSE_CHUNK_BYTES = 16 << 20
PARSE_MEMORY_RATIO = 64
_UNITS = {
    "bytes": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
    "PiB": 1 << 50,
}


#: The row of otel_threads_derived that records which SQL parsed the kept rows.
PARSED_RECORD = "(parsed)"


def parsed_version() -> str:
    """The version of the SQL the kept parses come from (the views they hold)."""
    files = sql_files()
    return "-".join(files.version(view) for view in KEPT)


class SharedViews(Scoped):
    """Evaluates the views several derived tables read into TEMP tables of their name."""

    def _shared_views(self, changed: list[str]) -> None:
        """The LLM calls and messages in scope (TEMP ``spans_raw`` and ``logs``) into TEMP
        tables named like their views, for all the derived views (each would otherwise
        parse them again). Traces parsed before keep their rows (`KEPT`), unless their
        span threads were just derived anew (``changed``); the others are parsed a chunk
        of traces at a time (`PARSE_CHUNK_BYTES`, at most 1/`PARSE_MEMORY_RATIO` of the
        memory limit), so that parsing holds one chunk's intermediate results rather than
        the whole scope's, and their rows are kept for the next refresh."""
        con, db = self.con, self.db
        not_changed = self._not_in("trace_id", changed)
        con.execute(
            "CREATE TEMP TABLE _scope_traces AS SELECT DISTINCT trace_id FROM ("
            "SELECT trace_id FROM temp.spans_raw UNION ALL "
            "SELECT trace_id FROM temp.logs WHERE trace_id IS NOT NULL)"
        )
        con.execute(
            f"CREATE TEMP TABLE _kept_traces AS SELECT DISTINCT trace_id FROM {db}.parsed_traces "
            f"WHERE trace_id IN (SELECT trace_id FROM temp._scope_traces) AND {not_changed}"
        )
        kept = "trace_id IN (SELECT trace_id FROM temp._kept_traces)"
        for view in KEPT:
            con.execute(
                f"CREATE TEMP TABLE _all_{view} AS SELECT * FROM {db}.{view}_mat WHERE {kept}"
            )
        chunk_bytes = min(PARSE_CHUNK_BYTES, self._memory_limit() // PARSE_MEMORY_RATIO)
        chunks: list[list[str]] = []
        keep: list[str] = []  # what is kept of what is parsed
        size = 0
        for trace, n in con.execute(f"""
                SELECT trace_id, sum(n) FROM (
                    SELECT trace_id, coalesce(strlen(attributes::VARCHAR), 0)
                                     + coalesce(strlen(events::VARCHAR), 0) AS n
                    FROM temp.spans_raw
                    UNION ALL
                    SELECT trace_id, coalesce(strlen(body::VARCHAR), 0)
                                     + coalesce(strlen(attributes::VARCHAR), 0)
                    FROM temp.logs WHERE trace_id IS NOT NULL)
                WHERE NOT {kept}
                GROUP BY trace_id ORDER BY trace_id""").fetchall():
            if not chunks or (chunks[-1] and size + int(n or 0) > chunk_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append(trace)
            size += int(n or 0)
            if int(n or 0) <= chunk_bytes // 2:  # a huge one is parsed again when needed:
                keep.append(trace)  # keeping its rows costs memory the limit may lack
        for name in ("spans_raw", "logs"):
            con.execute(f"ALTER TABLE temp.{name} RENAME TO _all_{name}")
        for chunk in chunks:
            in_chunk = self._in("trace_id", chunk)
            for name in ("spans_raw", "logs"):
                con.execute(
                    f"CREATE TEMP TABLE {name} AS SELECT * FROM temp._all_{name} WHERE {in_chunk}"
                )
            for view in _SHARED_VIEWS:
                con.execute(f"CREATE TEMP TABLE {view} AS SELECT * FROM {db}.{view}")
            for view in KEPT:
                con.execute(f"INSERT INTO temp._all_{view} SELECT * FROM temp.{view}")
            for name in (*_SHARED_VIEWS, "spans_raw", "logs"):
                con.execute(f"DROP TABLE temp.{name}")
        for name in ("spans_raw", "logs", *KEPT):
            con.execute(f"ALTER TABLE temp._all_{name} RENAME TO {name}")
        self._keep_parsed([t for chunk in chunks for t in chunk], keep)

    def _keep_parsed(self, parsed: list[str], traces: list[str]) -> None:
        """Forget what was kept of the traces just ``parsed``, and keep the new rows of
        ``traces`` among them (TEMP ``llm_calls``, ``messages``)."""
        con, db = self.con, self.db
        if parsed:
            in_parsed = self._in("trace_id", parsed)
            for table in ("parsed_traces", *(f"{view}_mat" for view in KEPT)):
                con.execute(f"DELETE FROM {db}.{table} WHERE {in_parsed}")
        if not traces:
            return
        in_traces = self._in("trace_id", traces)
        for view in KEPT:
            con.execute(f"INSERT INTO {db}.{view}_mat SELECT * FROM temp.{view} WHERE {in_traces}")
        con.execute(
            f"INSERT INTO {db}.parsed_traces SELECT trace_id FROM temp._scope_traces "
            f"WHERE {in_traces}"
        )

    def _forget_parsed(self) -> None:
        """Empty the kept parses (the SQL that parses changed, or every trace's span
        threads are derived anew): each trace is parsed again when next in scope."""
        con, db = self.con, self.db
        for table in ("parsed_traces", *(f"{view}_mat" for view in KEPT)):
            con.execute(f"DELETE FROM {db}.{table}")
        con.execute(
            "INSERT OR REPLACE INTO otel_threads_derived VALUES (?, ?)",
            [PARSED_RECORD, parsed_version()],
        )

    def _memory_limit(self) -> int:
        """DuckDB's memory_limit on this connection, in bytes (it reads as '1.0 GiB')."""
        value = str(self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        match = re.fullmatch(r"\s*([\d.]+)\s*(\w+)\s*", value)
        if not match or match.group(2) not in _UNITS:
            return PARSE_CHUNK_BYTES * PARSE_MEMORY_RATIO  # unknown form: no tighter bound
        return int(float(match.group(1)) * _UNITS[match.group(2)])
