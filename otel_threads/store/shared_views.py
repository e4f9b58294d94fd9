"""`SharedViews`: the LLM calls and messages of a refresh's scope, parsed once for all
the derived views, a chunk of traces at a time (otel_threads.store.derive)."""

from __future__ import annotations

from otel_threads.prices import price_new_models
from otel_threads.store.memory_budget import memory_limit_bytes
from otel_threads.store.scope import SHARED
from otel_threads.store.scoped import Scoped

__all__ = ["PARSE_CHUNK_BYTES", "PARSE_MEMORY_RATIO", "SharedViews"]

#: What the derived views read of the GenAI views: the rows of every chunk, together.
_RESULTS = ("llm_calls", "messages")
#: Evaluated once per chunk, into TEMP tables of the same name (in dependency order: the
#: later ones read the earlier): the views under both results too (`SHARED`), or each
#: result would bind and optimize them again (most of its time on a refresh's few
#: traces: llm_calls took 70 ms over the scope's spans, 20 ms over `SHARED` evaluated).
_SHARED_VIEWS = (*SHARED, *_RESULTS)
#: The LLM calls and messages of a refresh's scope are parsed this many bytes of content
#: at a time (at least one trace), so the memory parsing takes follows the chunk rather
#: than the scope: a thread of huge calls costs its texts, not many copies of them.
#: Parsing holds about 60 times the JSON it reads (DuckDB's JSON functions copy each
#: intermediate value), so a chunk is also at most 1/`PARSE_MEMORY_RATIO` of DuckDB's
#: memory_limit: under a small limit the chunks are smaller, not set aside.
PARSE_CHUNK_BYTES = 16 << 20
PARSE_MEMORY_RATIO = 64


class SharedViews(Scoped):
    """Evaluates the views several derived views read into TEMP tables of their name."""

    def _shared_views(self) -> None:
        """`_parse` the LLM calls and messages in scope; when their calls name a model
        whose price has not been looked up yet (`otel_threads.prices`), look it up and
        parse again, so their costs are priced (once per model a store ever sees)."""
        self._parse()
        if price_new_models(
            self.con, "temp.llm_calls", lambda: self._claim("table", ["model_prices"])
        ):
            for view in _RESULTS:
                self.con.execute(f"DROP TABLE temp.{view}")
            self._parse()

    def _parse(self) -> None:
        """The LLM calls and messages in scope (TEMP ``spans_raw`` and ``logs``) into TEMP
        tables named like their views, for all the derived views (each would otherwise
        parse them again), parsed a chunk of traces at a time (`PARSE_CHUNK_BYTES`, at most
        1/`PARSE_MEMORY_RATIO` of the memory limit), so that parsing holds one chunk's
        intermediate results rather than the whole scope's."""
        con, db = self.con, self.db
        chunk_bytes = min(PARSE_CHUNK_BYTES, memory_limit_bytes(self.con) // PARSE_MEMORY_RATIO)
        chunks: list[list[str]] = []
        size = 0
        for trace, n in sorted(self._content_bytes("temp").items()):
            if not chunks or (chunks[-1] and size + int(n or 0) > chunk_bytes):
                chunks.append([])
                size = 0
            chunks[-1].append(trace)
            size += int(n or 0)
        if len(chunks) <= 1:  # one chunk: the scope as it is
            for view in _SHARED_VIEWS:
                con.execute(f"CREATE TEMP TABLE {view} AS SELECT * FROM {db}.{view}")
            for view in _SHARED_VIEWS:
                if view not in _RESULTS:
                    con.execute(f"DROP TABLE temp.{view}")
            return
        for name in ("spans_raw", "logs"):
            con.execute(f"ALTER TABLE temp.{name} RENAME TO _all_{name}")
        for i, chunk in enumerate(chunks):
            in_chunk = self._in("trace_id", chunk)
            for name in ("spans_raw", "logs"):
                con.execute(
                    f"CREATE TEMP TABLE {name} AS SELECT * FROM temp._all_{name} WHERE {in_chunk}"
                )
            for view in _SHARED_VIEWS:
                con.execute(f"CREATE TEMP TABLE {view} AS SELECT * FROM {db}.{view}")
            for view in _RESULTS:
                if i == 0:  # (a view's columns, without planning it for no rows)
                    con.execute(f"ALTER TABLE temp.{view} RENAME TO _all_{view}")
                else:
                    con.execute(f"INSERT INTO temp._all_{view} SELECT * FROM temp.{view}")
            for name in (*_SHARED_VIEWS, "spans_raw", "logs"):
                if i > 0 or name not in _RESULTS:
                    con.execute(f"DROP TABLE temp.{name}")
        for name in ("spans_raw", "logs", *_RESULTS):
            con.execute(f"ALTER TABLE temp._all_{name} RENAME TO {name}")
