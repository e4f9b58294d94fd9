"""The views' SQL (``otel_threads/sql/<view>.sql``) and what each one reads.

A file whose header has a line ``-- macro parameters: a, b`` is a table macro instead
(a view that takes arguments: ``SELECT * FROM name(x, y)``).

Read once per process: the order in which the views are created (each after what it
reads) and the version of each derived table (a hash of the SQL its rows come from)
both follow from the tables and views each file reads, as DuckDB's parser finds them
(``duckdb.get_table_names``: not CTEs, columns or comments).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from importlib import resources

import duckdb

__all__ = ["DERIVED", "SqlFiles", "sql_files"]

_MACRO = re.compile(r"^-- macro parameters: (\w+(?:, \w+)*)$", re.MULTILINE)

#: (derived table, the view that derives it, what its rows are keyed by), in dependency
#: order. The tables are created by migration 0007; otel_threads.store.derive keeps them.
DERIVED: tuple[tuple[str, str, str], ...] = (
    ("span_threads_mat", "derive_span_threads", "trace_id"),
    ("message_keys_mat", "derive_message_keys", "trace_id"),
    ("thread_attributes_mat", "derive_thread_attributes", "trace_id"),
    ("call_responses_mat", "derive_call_responses", "trace_id"),
    ("annotations_mat", "derive_annotations", "trace_id"),
    ("turns_mat", "derive_turns", "thread_id"),
    ("transcript_mat", "derive_transcript", "thread_id"),
    ("threads_mat", "derive_threads", "thread_id"),
    ("thread_tails_mat", "derive_thread_tails", "thread_id"),
)


#: What the views that read a table of rows per trace whole leave out of it: the trace's
#: number (migration 0018, otel_threads.store.trace_numbers). Their SQL before said the
#: same without it, and read the same rows: `SqlFiles.versions`.
LEFT_OUT = " EXCLUDE (trace_n)"


class SqlFiles:
    """The view definitions: their text, what each reads, their creation order."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self.texts = dict(texts)
        via = {table: view for table, view, _ in DERIVED}
        #: view -> the views and tables it reads directly
        self.names: dict[str, set[str]] = {
            name: set(duckdb.get_table_names(text)) - {name} for name, text in self.texts.items()
        }
        #: view -> the views its rows come from directly (a derived table counts as the
        #: view that derives it)
        self.reads: dict[str, set[str]] = {
            name: {via.get(n, n) for n in names} & self.texts.keys()
            for name, names in self.names.items()
        }
        #: every view, each after the views it reads (`ValueError` on a cycle)
        self.order: list[str] = self._order()
        #: a hash of every view's SQL
        self.all_version = self._hash(self.order)
        #: table macro -> its parameters (the other files are views)
        self.macros: dict[str, str] = {
            name: m.group(1) for name, text in self.texts.items() if (m := _MACRO.search(text))
        }

    def create(self, name: str) -> str:
        """The statement that creates the view (or table macro) ``name``."""
        if name in self.macros:
            params = self.macros[name]
            return f'CREATE OR REPLACE MACRO "{name}"({params}) AS TABLE\n{self.texts[name]}'
        return f'CREATE OR REPLACE VIEW "{name}" AS\n{self.texts[name]}'

    def _order(self) -> list[str]:
        # A derived table is a table by then (migration 0007): only the views a view
        # names itself must exist first.
        direct = {name: names & self.texts.keys() for name, names in self.names.items()}
        order: list[str] = []
        done: set[str] = set()
        while len(order) < len(direct):
            ready = sorted(n for n, deps in direct.items() if n not in done and deps <= done)
            if not ready:
                left = sorted(n for n in direct if n not in done)
                raise ValueError(f"the views {left} read each other in a cycle")
            order += ready
            done.update(ready)
        return order

    def closure(self, view: str) -> set[str]:
        """``view`` and every view it reads, followed to the end."""
        todo, seen = [view], set()
        while todo:
            name = todo.pop()
            if name not in seen and name in self.texts:
                seen.add(name)
                todo += self.reads[name]
        return seen

    def version(self, view: str) -> str:
        """A hash of the SQL ``view``'s rows come from (`closure`): a derived table built
        by other SQL is stale, and changing a view no derivation reads rebuilds nothing."""
        return self._hash(sorted(self.closure(view)))

    def versions(self, view: str) -> set[str]:
        """`version`, and the version of the same SQL before the views left the trace
        numbers out (`LEFT_OUT`; 0018): rows derived by either are the same rows, so a
        store from before derives nothing anew for it."""
        earlier = {name: text.replace(LEFT_OUT, "") for name, text in self.texts.items()}
        return {self.version(view), SqlFiles(earlier).version(view)}

    def _hash(self, names: list[str]) -> str:
        digest = hashlib.sha256()
        for name in names:
            digest.update(name.encode())
            digest.update(self.texts[name].encode())
        return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def sql_files() -> SqlFiles:
    """The view definitions that ship with this version (read once)."""
    sql_dir = resources.files("otel_threads").joinpath("sql")
    return SqlFiles(
        {
            e.name[:-4]: e.read_text(encoding="utf-8")
            for e in sql_dir.iterdir()
            if e.name.endswith(".sql")
        }
    )
