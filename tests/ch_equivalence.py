"""The ClickHouse path against a DuckDB file: the same spans, the same rows.

`check_store(path)` takes the raw spans and logs a test left in a DuckDB store, writes
them to chDB as the OpenTelemetry Collector's clickhouseexporter would (their attribute
values as strings, the enums as the exporter spells them), derives them there with the
derive worker, and compares every derived view with the file's, row for row, but for the
columns the exporter cannot carry (`LOSSY`).
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import math
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from chdb_store import chdb_engine

from otel_threads.clickhouse.exporter_rows import insert_as_exporter
from otel_threads.clickhouse.schema import VIEWS, init_schema
from otel_threads.clickhouse.worker import Worker
from otel_threads.otlp.tables import LOG_SCHEMA, SPAN_SCHEMA
from otel_threads.prices import PriceEntry, stored_overrides

#: Columns a store on ClickHouse cannot give as the file does, by view (docs/clickhouse.md,
#: "What the exporter keeps"): the hashes of attribute values, since a double that is
#: whole (1.0) comes back as 1, and a map or an array of maps as its JSON text. (Which
#: threads the attribute filters find is compared in tests/test_clickhouse_reading.py.)
LOSSY: dict[str, set[str]] = {view: set() for view in VIEWS} | {
    "thread_attributes": {"attribute_hashes"}
}


def _open(path: str) -> duckdb.DuckDBPyConnection:
    """``path`` read-only; a copy of it (and its WAL) when this process still holds it (a
    test's connection not yet collected)."""
    try:
        return duckdb.connect(path, read_only=True)
    except duckdb.Error:
        folder = tempfile.mkdtemp(prefix="ch-eq-")
        atexit.register(shutil.rmtree, folder, True)
        copy = Path(folder) / Path(path).name
        shutil.copy(path, copy)
        if Path(path + ".wal").exists():
            shutil.copy(path + ".wal", str(copy) + ".wal")
        return duckdb.connect(str(copy), read_only=True)


def raw_tables(path: str) -> tuple[pa.Table, pa.Table]:
    """The spans and log records stored in the file at ``path``, as the decoder made them, in
    the order they arrived."""
    con = _open(path)
    try:
        spans = con.sql(
            f"SELECT {', '.join(SPAN_SCHEMA.names)} FROM spans_raw ORDER BY ingest_seq"
        ).to_arrow_table()
        logs = con.sql(
            f"SELECT {', '.join(LOG_SCHEMA.names)} FROM logs ORDER BY ingest_seq"
        ).to_arrow_table()
    finally:
        con.close()
    return spans.cast(SPAN_SCHEMA), logs.cast(LOG_SCHEMA)


def _parts(spans: pa.Table, logs: pa.Table, parts: int) -> list[tuple[pa.Table, pa.Table]]:
    """``spans`` and ``logs`` in up to ``parts`` inserts, a trace's rows in one, the traces in
    the order they first arrived (log records without a trace in the first)."""
    order = list(dict.fromkeys(spans.column("trace_id").to_pylist()))
    order += [t for t in dict.fromkeys(logs.column("trace_id").to_pylist()) if t]
    order = list(dict.fromkeys(order))
    size = max(1, math.ceil(len(order) / max(1, parts)))
    part_of = {trace_id: i // size for i, trace_id in enumerate(order)}
    count = max(part_of.values(), default=0) + 1
    out = []
    for i in range(count):

        def of(table: pa.Table, i: int = i) -> pa.Table:
            keep = [part_of.get(t, 0) == i for t in table.column("trace_id").to_pylist()]
            return table.filter(pa.array(keep, pa.bool_()))

        out.append((of(spans), of(logs)))
    return out


def derive_on_clickhouse(
    spans: pa.Table,
    logs: pa.Table,
    enum_style: str = "current",
    shards: int = 1,
    prices: list[PriceEntry] | None = None,
    parts: int = 1,
):
    """A fresh chDB database holding ``spans`` and ``logs`` as the exporter writes them, in
    ``parts`` inserts (`_parts`), derived after each by ``shards`` workers (each to the
    end, until none has work left), with the price file entries ``prices``. In parts, the
    workers keep their stores between inserts, and write a later part's threads from
    them: only the new traces' rows of the per-trace views."""
    engine = chdb_engine("eq")
    init_schema(engine)
    workers = [Worker(engine, (i, shards), settle_s=0, prices=prices) for i in range(shards)]
    try:
        for part_spans, part_logs in _parts(spans, logs, parts):
            insert_as_exporter(engine, spans=part_spans, logs=part_logs, enum_style=enum_style)
            for _ in range(10):  # handing traces between shards takes a few passes
                if not any(r.arrivals for w in workers for r in w.run_once()):
                    break
    finally:
        for w in workers:
            w.close()
    return engine


def _norm(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def _rows(table: pa.Table, drop: Iterable[str]) -> list[tuple]:
    names = [n for n in table.column_names if n not in set(drop) and n != "gen"]
    columns = [table.column(n).to_pylist() for n in names]
    for i, name in enumerate(names):  # ClickHouse arrays are never NULL: empty stands for both
        if pa.types.is_list(table.schema.field(name).type):
            columns[i] = [[] if v is None else v for v in columns[i]]
    rows = [tuple(_norm(v) for v in row) for row in zip(*columns, strict=True)]
    return sorted(rows, key=repr)


def file_views(path: str) -> dict[str, pa.Table]:
    con = _open(path)
    try:
        return {
            view: con.sql(f"SELECT * FROM {view} WHERE thread_id IS NOT NULL").to_arrow_table()
            for view in VIEWS
        }
    finally:
        con.close()


def compare(expected: dict[str, pa.Table], engine) -> dict[str, tuple[list, list]]:
    """The views whose rows differ: {view: (only in the file, only on ClickHouse)}."""
    differ = {}
    for view, table in expected.items():
        got = engine.query(f"SELECT * FROM {view}")
        want = _rows(table, LOSSY[view])
        have = _rows(got, LOSSY[view])
        missing = [r for r in want if r not in have]
        extra = [r for r in have if r not in want]
        if missing or extra:
            differ[view] = (missing, extra)
    return differ


def check_store(path: str, **kwargs: Any) -> None:
    """Assert that ClickHouse derives the file's spans into the file's rows (with the
    file's price file entries), inserted in the order the file took them, in up to three
    parts (``parts=``)."""
    kwargs.setdefault("parts", 3)
    spans, logs = raw_tables(path)
    con = _open(path)
    try:
        prices = stored_overrides(con)
    finally:
        con.close()
    engine = derive_on_clickhouse(spans, logs, prices=prices or None, **kwargs)
    differ = compare(file_views(path), engine)
    assert not differ, _describe(differ)


def _describe(differ: dict[str, tuple[list, list]]) -> str:
    lines = []
    for view, (missing, extra) in differ.items():
        lines.append(
            f"{view}: {len(missing)} rows only in the file, {len(extra)} only on ClickHouse"
        )
        lines += [f"  file: {r}" for r in missing[:3]]
        lines += [f"  ch:   {r}" for r in extra[:3]]
    return "\n".join(lines)
