"""Opening the store's file: numbered migrations, views, and who holds it.

One file holds everything (default ``./otel-threads.duckdb``, env
``OTEL_THREADS_DB``). Raw data lands in the tables that the migrations in
``otel_threads/migrations/NNNN_*.sql`` create, in order, each recorded in
``otel_threads_migrations``; everything derived is a view from
``otel_threads/sql/<view>.sql``, stored in the file so plain DuckDB sees it.

DuckDB lets one process write a file at a time. A collector that holds a file
says so in ``<file>.collector.json`` (its PID and API URL), so reading commands
can ask its API instead; anything else that finds the file locked gets a
`StoreLockedError` naming the holder (`otel_threads.store.holder`).
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

import duckdb

from otel_threads import env
from otel_threads.prices import reprice
from otel_threads.store.holder import read_holder
from otel_threads.store.sqlfiles import sql_files

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "DEMO_DB",
    "NotAStoreError",
    "StoreLockedError",
    "apply_views",
    "connect",
    "default_db_path",
    "migrate",
]

#: Environment variable naming the database file.
DB_ENV = env.DB.name
#: The database file used when neither an argument nor `OTEL_THREADS_DB` names one.
DEFAULT_DB: str = env.DB.default or ""
#: The file `otel-threads demo` writes, in the current folder: never `DEFAULT_DB`, since
#: the demo replaces its file, and the default file may be a real store.
DEMO_DB = "otel-threads-demo.duckdb"

#: The row of ``otel_threads_derived`` that holds the version of the views' SQL (the
#: other rows: each derived table's).
VIEWS_RECORD = "(views)"

_MIGRATION_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

#: Rows per row group of the tables a writable open appends to (DuckDB's default is
#: 122,880). A checkpoint holds the reads that filter a table while it writes that table
#: (docs/repro/duckdb_checkpoint_reads.py), and on a copy
#: of a soak's store (3.2M spans) one that completed a default row group of spans_raw
#: took 1.2-1.6 s. With row groups of 16,384 rows the same appends checkpointed in a
#: sixth of the time (longest 0.3 s), readers waited a twelfth as long (p99), and the
#: file took 1.1-1.2x the bytes (`python bench/checkpoint.py --seed STORE`). DuckDB
#: does not keep this in the file: it is given each time the file is attached.
ROW_GROUP_SIZE = 16_384

#: Names DuckDB gives its own catalogs: a file with one of these stems is attached as
#: ``store``.
_RESERVED_CATALOGS = frozenset({"memory", "system", "temp", "main"})


class StoreLockedError(RuntimeError):
    """Another process holds the database file for writing."""


class NotAStoreError(ValueError):
    """The path names no otel-threads store: a folder, a file that is not DuckDB, or a
    DuckDB file without the store's tables. The message names it, in one line."""


def default_db_path(path: str | os.PathLike[str] | None = None) -> str:
    """The database path: the argument, else `OTEL_THREADS_DB`, else the default."""
    if path is not None and str(path):
        return str(path)
    return env.value(env.DB) or DEFAULT_DB


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("otel_threads").joinpath("migrations").iterdir():
        m = _MIGRATION_FILE.fullmatch(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this file lacks, each in its own transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS otel_threads_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP)"
    )
    done = {row[0] for row in con.execute("SELECT version FROM otel_threads_migrations").fetchall()}
    known = _migrations()
    newest = max(done, default=0)
    if newest > len(known):
        raise RuntimeError(
            f"the database is at schema version {newest}, newer than this otel-threads "
            f"knows ({len(known)}): upgrade otel-threads"
        )
    applied = []
    for version, name, sql in known:
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO otel_threads_migrations (version, name) VALUES (?, ?)", [version, name]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def apply_views(con: duckdb.DuckDBPyConnection, derive_now: bool = True) -> list[str]:
    """`CREATE OR REPLACE VIEW` (or MACRO) every ``sql/<name>.sql``, each after the views it reads
    (`SqlFiles.order`), then derive anew the derived tables whose rows other SQL derived
    (`Deriver.rebuild`: their traces queued), working the queue off here unless not
    ``derive_now`` (a `Store` derives it behind ingest). Returns the views created: none
    when the file already has these views (``otel_threads_derived`` records the version
    of their SQL), so a file opens again without binding every view anew."""
    from otel_threads.store.derive import Deriver

    files = sql_files()
    have = {
        r[0]
        for r in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main' "
            "AND database_name = current_database() UNION ALL "
            "SELECT function_name FROM duckdb_functions() WHERE function_type = 'table_macro' "
            "AND schema_name = 'main' AND database_name = current_database()"
        ).fetchall()
    }
    recorded = con.execute(
        "SELECT version FROM otel_threads_derived WHERE name = ?", [VIEWS_RECORD]
    ).fetchall()
    created: list[str] = []
    if recorded != [(files.all_version,)] or not have >= files.texts.keys():
        for name in files.order:
            try:
                con.execute(files.create(name))
            except duckdb.Error as exc:
                raise RuntimeError(f"could not create the view {name}: {exc}") from exc
            created.append(name)
        con.execute(
            "INSERT OR REPLACE INTO otel_threads_derived VALUES (?, ?)",
            [VIEWS_RECORD, files.all_version],
        )
    reprice(con)  # (a newer genai-prices, say: the costs it changes are derived again)
    deriver = Deriver(con)
    stale = deriver.stale()
    if stale:
        deriver.rebuild(stale)
        while derive_now and deriver.refresh():
            pass
    return created


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def connect(
    path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    derive_now: bool = True,
    row_group_size: int = ROW_GROUP_SIZE,
) -> duckdb.DuckDBPyConnection:
    """Open the store; a writable open also migrates it and (re)creates the views. When
    this version derives a table otherwise, its rows are derived anew (`apply_views`),
    before this returns unless not ``derive_now``. A writable open appends row groups of
    ``row_group_size`` rows (a multiple of 2,048; see `ROW_GROUP_SIZE`).

    Raises `StoreLockedError` when another process holds the file, naming it. A
    read-only open raises `FileNotFoundError` for a file that does not exist (its
    ``filename`` is the path) and `NotAStoreError` for one that is no store.
    """
    db = default_db_path(path)
    if read_only:
        return _open_read_only(db)
    try:
        con = _attach(db, row_group_size)
    except duckdb.IOException as exc:
        raise _locked_error(db, exc) from exc
    try:
        migrate(con)
        apply_views(con, derive_now)
    except Exception:
        con.close()
        raise
    return con


_GIVE_A_STORE = "name the file a collector writes (otel-threads collect --db FILE)"


def _open_read_only(db: str) -> duckdb.DuckDBPyConnection:
    """Open an existing store read-only (nothing migrated, nothing written)."""
    if Path(db).is_dir():
        raise NotAStoreError(f"{db} is a folder, not an otel-threads store: {_GIVE_A_STORE}")
    if not Path(db).exists():
        missing = FileNotFoundError(f"no otel-threads database at {db!r}")
        missing.filename = db
        raise missing
    try:
        con = duckdb.connect(db, read_only=True)
    except duckdb.IOException as exc:
        if "not a valid DuckDB database file" in str(exc):
            raise NotAStoreError(
                f"{db} is not a DuckDB file, so not an otel-threads store: {_GIVE_A_STORE}"
            ) from None
        raise _locked_error(db, exc) from exc
    # every store has the migrations' record from its first open on
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'otel_threads_migrations' "
        "AND schema_name = 'main' AND database_name = current_database()"
    ).fetchall()[0][0]
    if not found:
        con.close()
        raise NotAStoreError(
            f"{db} is a DuckDB file but not an otel-threads store: {_GIVE_A_STORE}"
        )
    return con


def _attach(db: str, row_group_size: int) -> duckdb.DuckDBPyConnection:
    """Open ``db`` for writing with row groups of ``row_group_size`` rows: an in-memory
    database attaches the file, makes it the default and lets the in-memory one go, so
    the connection and every cursor of it see the file's tables as
    ``duckdb.connect(db)`` would (the catalog named after the file's stem, as DuckDB
    names it; spills to ``<db>.tmp``, where DuckDB puts them for a file it opens, not
    to the ``.tmp`` of the working directory it uses for an in-memory database)."""
    alias = Path(db).stem
    if not alias or alias.lower() in _RESERVED_CATALOGS:
        alias = "store"
    name = '"' + alias.replace('"', '""') + '"'
    con = duckdb.connect(":memory:", config={"temp_directory": f"{db}.tmp"})
    try:
        target = "'" + db.replace("'", "''") + "'"
        con.execute(f"ATTACH {target} AS {name} (ROW_GROUP_SIZE {int(row_group_size)})")
        con.execute(f"USE {name}")
        con.execute("DETACH memory")
    except BaseException:
        con.close()
        raise
    return con


def _locked_error(db: str, exc: Exception) -> Exception:
    m = _LOCK_HOLDER.search(str(exc))
    if not m:
        return exc
    holder = read_holder(db)
    who = f"PID {m.group(2)} ({m.group(1)})"
    if holder is not None and str(holder.pid) == m.group(2):
        return StoreLockedError(
            f"{db} is held by an otel-threads collector, {who}; ask its API at {holder.api} "
            f"(e.g. otel-threads threads --url {holder.api}) or stop it first"
        )
    return StoreLockedError(
        f"{db} is held by another process, {who}: DuckDB allows one writing process per "
        "file; stop that process, or point OTEL_THREADS_DB / --db at another file"
    )
