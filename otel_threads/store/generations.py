"""Tables kept in generations: ``<view>_0``, ``<view>_1``, ... read together through the
view ``<view>``, each indexed by a random key (a trace id, a turn id).

DuckDB writes about all of an index that random keys reached at each checkpoint, so one
table indexed by random keys costs every checkpoint more as it grows. In generations,
new rows go to the newest table alone, and the next one begins when it is full: an older
one is not written again but by retention, so neither is its index, and what a
checkpoint writes stays the size of a generation whatever the store holds. A lookup
through the view uses each table's index (docs/storage.md, "Indexes and random ids").
Kept so: the trace numbers (otel_threads.store.trace_numbers) and the turn keys
(otel_threads.store.turn_keys).
"""

from __future__ import annotations

import re

import duckdb

__all__ = ["Generations"]


class Generations:
    """The generations of the view ``view``: tables of ``columns`` (DDL), indexed by
    ``index`` (a column; None when ``columns`` has a key of its own)."""

    def __init__(self, view: str, columns: str, index: str | None = None) -> None:
        self.view = view
        self.columns = columns
        self.index = index
        self._name = re.compile(rf"{re.escape(view)}_(\d+)")

    def tables(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """The tables of the view in the file (on ``con``'s default catalog), oldest
        first."""
        names = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND starts_with(table_name, ?)",
            [f"{self.view}_"],
        ).fetchall()
        found = [(int(m.group(1)), n) for (n,) in names if (m := self._name.fullmatch(n))]
        return [n for _, n in sorted(found)]

    def create(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """Create the table ``name`` of the view, with its index."""
        con.execute(f"CREATE TABLE {name} ({self.columns})")
        if self.index is not None:
            con.execute(f"CREATE INDEX {name}_{self.index} ON {name} ({self.index})")

    def begin(self, con: duckdb.DuckDBPyConnection, tables: list[str]) -> str:
        """Add the table after ``tables`` (in the caller's transaction) and the view over
        them all; returns its name."""
        (last,) = self._name.fullmatch(tables[-1]).groups()
        name = f"{self.view}_{int(last) + 1}"
        self.create(con, name)
        self._view(con, [*tables, name])
        return name

    def restart(self, con: duckdb.DuckDBPyConnection) -> None:
        """Drop every table of the view and begin again from an empty ``<view>_0`` (in
        the caller's transaction)."""
        for table in self.tables(con):
            con.execute(f"DROP TABLE {table}")
        self.create(con, f"{self.view}_0")
        self._view(con, [f"{self.view}_0"])

    def _view(self, con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
        union = " UNION ALL ".join(f"SELECT * FROM {t}" for t in tables)
        con.execute(f"CREATE OR REPLACE VIEW {self.view} AS {union}")
