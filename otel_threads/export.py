"""`export`: the views of the threads a query selects, as files (``otel-threads export``).

One file per view (`VIEWS`: threads, turns, llm_calls, messages, transcript,
annotations), each
holding the rows of the selected threads, as Parquet, CSV or JSON Lines. It reads
through a `ThreadsClient`, so it works whether a collector holds the store (through its
API's ``POST /arrow``) or not (the file, read-only), a bounded number of threads at a
time: memory follows the chunk, not the store.

In CSV a list or struct value is written as JSON; in CSV and JSON Lines a time is ISO
8601 UTC with its zone (``2026-12-04T09:30:00.123456Z``); Parquet keeps the types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from otel_threads.json_out import dumps, utc_iso
from otel_threads.query import ThreadsQueryReq, threads_where

__all__ = ["FORMATS", "VIEWS", "export"]

#: The views exported, each with the order its rows are written in.
VIEWS = {
    "threads": "thread_id",
    "turns": "thread_id, turn_index, turn_id",
    "llm_calls": "thread_id, start_time, trace_id, span_id",
    "messages": "thread_id, trace_id, span_id, direction, position",
    "transcript": "thread_id, seq",
    "annotations": "thread_id, turn_id NULLS FIRST, created_at, annotation_id",
}
FORMATS = ("parquet", "csv", "jsonl")
#: Threads read per request; a chunk whose answer is too large for the API is halved.
CHUNK_THREADS = 500
_TOO_LARGE = "the answer is larger than"

Fetch = Callable[[str, list[Any]], pa.Table]


def export(
    fetch: Fetch, directory: str | Path, req: ThreadsQueryReq, fmt: str = "parquet"
) -> dict[str, int]:
    """Write the views of the threads ``req`` selects (its filter, project and window;
    not its limit) into ``directory`` as ``<view>.<fmt>``, through ``fetch(sql, params)``
    (`ThreadsClient.arrow`, or a connection's). Returns the rows written per view."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{str(out)!r} is a file: export writes into a directory")
    out.mkdir(parents=True, exist_ok=True)
    cond, params = threads_where(req)
    ids = fetch(f"SELECT thread_id FROM threads {cond} ORDER BY thread_id", params)
    thread_ids = ids.column(0).to_pylist()
    counts = {}
    for view, order in VIEWS.items():
        path = out / f"{view}.{fmt}"
        with _Writer(path, fmt) as writer:
            writer.write(fetch(f"SELECT * FROM {view} WHERE false", []))  # (its columns)
            for i in range(0, len(thread_ids), CHUNK_THREADS):
                for table in _chunk(fetch, view, order, thread_ids[i : i + CHUNK_THREADS]):
                    writer.write(table)
            counts[view] = writer.rows
    return counts


def _chunk(fetch: Fetch, view: str, order: str, ids: list[str]) -> Iterator[pa.Table]:
    """The view's rows of ``ids``, in as many answers as the API's size limit needs."""
    try:
        table = fetch(
            f"SELECT * FROM {view} WHERE thread_id = ANY(?::VARCHAR[]) ORDER BY {order}", [ids]
        )
    except ValueError as exc:
        if not str(exc).startswith(_TOO_LARGE):
            raise
        if len(ids) == 1:
            raise ValueError(
                f"thread {ids[0]!r}: its {view} are too large to export: {exc}"
            ) from None
        table = None
    if table is not None:
        yield table
        return
    half = len(ids) // 2
    yield from _chunk(fetch, view, order, ids[:half])
    yield from _chunk(fetch, view, order, ids[half:])


class _Writer:
    """One view's file: tables appended as they come."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt, self.rows = path, fmt, 0
        self._writer: Any = None
        self._file: Any = None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()

    def write(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self.fmt == "parquet":
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table)
        elif self.fmt == "csv":
            table = _flat(table)
            if self._writer is None:
                self._writer = pacsv.CSVWriter(str(self.path), table.schema)
            self._writer.write_table(table)
        else:
            if self._file is None:
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed on exit)
            for row in table.to_pylist():
                self._file.write(dumps(row) + "\n")


def _flat(table: pa.Table) -> pa.Table:
    """``table`` as CSV can hold it: lists and structs as JSON text, times as ISO 8601 UTC."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_nested(kind):
            values = [None if v is None else dumps(v) for v in column.to_pylist()]
            column = pa.array(values, pa.string())
        elif pa.types.is_timestamp(kind):
            column = pa.array(
                [None if v is None else utc_iso(v) for v in column.to_pylist()], pa.string()
            )
        elif isinstance(kind, pa.ExtensionType):  # JSON text
            column = column.cast(kind.storage_type)
        columns.append(column)
    return pa.table(columns, names=table.column_names)
