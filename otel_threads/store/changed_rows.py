"""Writing a refresh's rows into the file's derived tables, only where they differ:
`write_changed` (otel_threads.store.thread_rows), and `match`, the condition that two
rows are the same."""

from __future__ import annotations

import duckdb

__all__ = ["match", "write_changed"]


def match(columns: tuple[str, ...], a: str = "n", b: str = "o") -> str:
    """Rows ``a`` and ``b`` hold the same ``columns`` (NULLs equal)."""
    return " AND ".join(f"{a}.{c} IS NOT DISTINCT FROM {b}.{c}" for c in columns)


def write_changed(con: duckdb.DuckDBPyConnection, db: str, table: str, in_threads: str) -> None:
    """Make the file's (``db``) ``table`` rows of the threads in scope those of TEMP
    ``table``, writing only the rows that differ: a new turn of a long thread changes a
    few rows of it, and rewriting all of them (with their indexes) cost most of a refresh."""
    columns = tuple(f'"{r[0]}"' for r in con.execute(f"DESCRIBE temp.{table}").fetchall())
    same = match(columns)
    con.execute(
        f"DELETE FROM {db}.{table} WHERE rowid IN (SELECT o.rowid FROM {db}.{table} o "
        f"WHERE o.{in_threads} AND NOT EXISTS (SELECT 1 FROM temp.{table} n WHERE {same}))"
    )
    con.execute(
        f"INSERT INTO {db}.{table} SELECT * FROM temp.{table} n WHERE n.{in_threads} "
        f"AND NOT EXISTS (SELECT 1 FROM {db}.{table} o WHERE o.{in_threads} AND {same})"
    )
