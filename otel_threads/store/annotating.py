"""The store's side of annotations made through the API (otel_threads.annotations checks
them): `record` and `remove` write ``annotation_records`` and keep the thread's
``annotation_count`` in ``threads_mat`` (derive_threads counts the same rows when the
thread is derived), and give the thread a new version stamp, so its ETag and the list's
change. They run in the caller's transaction; on the collector that is `Reads.write`,
which takes turns with derivation, so a refresh never derives a thread between the two.
"""

from __future__ import annotations

from typing import Any

import duckdb

__all__ = ["record", "remove"]

_COLUMNS = (
    "annotation_id",
    "thread_id",
    "turn_id",
    "trace_id",
    "span_id",
    "name",
    "label",
    "score",
    "explanation",
    "source",
    "author",
    "created_at",
)


def record(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (each with every column of annotation_records) and count them in
    their threads' rows."""
    if not rows:
        return
    con.executemany(
        f"INSERT INTO annotation_records ({', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(_COLUMNS))})",
        [[row[c] for c in _COLUMNS] for row in rows],
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["thread_id"]] = counts.get(row["thread_id"], 0) + 1
    _count(con, counts)


def remove(con: duckdb.DuckDBPyConnection, annotation_id: str) -> str | None:
    """Delete the annotation made through the API with this id; its thread's id, or None
    when there is none."""
    deleted = con.execute(
        "DELETE FROM annotation_records WHERE annotation_id = ? RETURNING thread_id",
        [annotation_id],
    ).fetchall()
    if not deleted:
        return None
    thread_id = str(deleted[0][0])
    _count(con, {thread_id: -1})
    return thread_id


def _count(con: duckdb.DuckDBPyConnection, counts: dict[str, int]) -> None:
    for thread_id, n in counts.items():
        con.execute(
            "UPDATE threads_mat SET annotation_count = coalesce(annotation_count, 0) + ? "
            "WHERE thread_id = ?",
            [n, thread_id],
        )
        con.execute(
            "INSERT INTO thread_versions SELECT ?, nextval('derive_version_seq')", [thread_id]
        )
