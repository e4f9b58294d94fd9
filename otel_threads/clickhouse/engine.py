"""One way to talk to ClickHouse: a server (``clickhouse://``) or chDB (``chdb://``).

Everything otel-threads runs on ClickHouse goes through `Engine`: `query` returns an
Arrow table (`batches`: its record batches as ClickHouse sends them, for an answer that
may be too large to hold), `command` runs a statement, `insert` appends an Arrow table. The SQL is
the same for both; parameters are ClickHouse's own ``{name:Type}`` placeholders.

- ``clickhouse://[user[:password]@]host[:port][/database]`` (``clickhouses://`` for
  TLS): a server, through clickhouse-connect over HTTP (port 8123, 8443 for TLS).
- ``chdb://PATH[?database=NAME]``: an embedded ClickHouse (chDB) keeping its data in the
  folder PATH. chDB runs one such folder per process, so a process holds one chdb store.

The database defaults to ``otel``, as the OpenTelemetry Collector's clickhouseexporter's
does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

__all__ = [
    "DEFAULT_DATABASE",
    "Engine",
    "EngineError",
    "connect_engine",
    "database_of",
    "quote_name",
]

DEFAULT_DATABASE = "otel"

# clickhouse-connect logs a failed request before raising it; with no logging set up,
# Python would print that to stderr beside our own one-line error (an application that
# sets up logging still gets it)
logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())


class EngineError(Exception):
    """A URL that names no ClickHouse we can reach, or a statement ClickHouse refused."""


class Engine:
    """A ClickHouse database to query and write (see the module's docstring)."""

    url: str
    database: str

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        raise NotImplementedError

    def batches(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The result's record batches as they come (the query stops when the caller
        stops: close the iterator)."""
        raise NotImplementedError

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    def insert(self, table: str, rows: pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        """The result as a list of tuples (for small results)."""
        result = self.query(sql, params)
        columns = [c.to_pylist() for c in result.columns]
        return list(zip(*columns, strict=True)) if columns else []

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _literal(value: Any) -> str:
    """A parameter's value in ClickHouse's text format (what chDB takes for ``{x:T}``)."""
    if isinstance(value, str):
        return value
    return _quoted(value)


def _quoted(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    raise TypeError(f"no ClickHouse literal for {type(value).__name__}")


class ChdbEngine(Engine):
    """chDB in this process (one data folder per process: chDB's own rule)."""

    _lock = threading.Lock()
    _session: Any = None
    _path: str | None = None

    def __init__(self, path: str, database: str) -> None:
        try:
            from chdb import session as chdb_session
        except ImportError:
            raise EngineError(
                "chdb:// needs chDB: pip install 'otel-threads[clickhouse]'"
            ) from None
        with ChdbEngine._lock:
            if ChdbEngine._session is None:
                ChdbEngine._session = chdb_session.Session(path)
                ChdbEngine._path = path
            elif ChdbEngine._path != path:
                raise EngineError(
                    f"this process already holds the chdb store {ChdbEngine._path}; "
                    f"chDB opens one folder per process"
                )
        self.url = f"chdb://{path}?database={database}"
        self.database = database
        self._run(f"CREATE DATABASE IF NOT EXISTS {quote_name(database)}", None, "CSV", use=False)

    def _run(self, sql: str, params: Mapping[str, Any] | None, fmt: str, use: bool = True) -> Any:
        text = None if not params else {k: _literal(v) for k, v in params.items()}
        with ChdbEngine._lock:
            try:
                if use:
                    self._session.query(f"USE {quote_name(self.database)}", "CSV")
                return self._session.query(sql, fmt, params=text)
            except Exception as exc:
                raise EngineError(_first_line(exc)) from None

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return self._run(sql, params, "ArrowTable")

    def batches(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        text = None if not params else {k: _literal(v) for k, v in params.items()}
        with ChdbEngine._lock:  # (one query at a time in chDB's session, to its end)
            try:
                self._session.query(f"USE {quote_name(self.database)}", "CSV")
                stream = self._session.send_query(sql, "Arrow", params=text)
            except Exception as exc:
                raise EngineError(_first_line(exc)) from None
            try:
                for chunk in _chunks(stream):  # (each chunk is an Arrow file)
                    file = pa.ipc.open_file(pa.py_buffer(chunk.bytes()))
                    yield from (file.get_batch(i) for i in range(file.num_record_batches))
            finally:
                stream.close()

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, params, "CSV")

    def insert(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        names = ", ".join(quote_name(n) for n in rows.column_names)
        with ChdbEngine._lock:
            try:
                self._session.query(f"USE {quote_name(self.database)}", "CSV")
                # chDB reads the Python variable named in Python(...) from this frame
                chdb_rows = rows  # noqa: F841
                self._session.query(
                    f"INSERT INTO {quote_name(table)} ({names}) SELECT * FROM Python(chdb_rows)",
                    "CSV",
                )
            except Exception as exc:
                raise EngineError(_first_line(exc)) from None


class ServerEngine(Engine):
    """A ClickHouse server over HTTP, through clickhouse-connect."""

    def __init__(self, url: str, host: str, port: int, secure: bool, user: str, password: str,
                 database: str) -> None:  # fmt: skip
        try:
            import clickhouse_connect
        except ImportError:
            raise EngineError(
                "clickhouse:// needs clickhouse-connect: pip install 'otel-threads[clickhouse]'"
            ) from None
        try:
            self._client = clickhouse_connect.get_client(
                host=host, port=port, secure=secure, username=user, password=password
            )
        except Exception as exc:
            raise EngineError(f"cannot reach ClickHouse at {url}: {_os_error(exc)}") from None
        self.url = url
        self.database = database
        exists = self._client.command(
            "SELECT count() FROM system.databases WHERE name = {db:String}", {"db": database}
        )
        if not int(exists):
            self.command(f"CREATE DATABASE IF NOT EXISTS {quote_name(database)}")
        self._client.database = database

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            return self._client.query_arrow(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise EngineError(_first_line(exc)) from None

    def batches(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        try:
            stream = self._client.query_arrow_stream(sql, parameters=dict(params or {}))
            with stream:
                for part in _chunks(stream):
                    yield from part.to_batches() if isinstance(part, pa.Table) else [part]
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(_first_line(exc)) from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise EngineError(_first_line(exc)) from None

    def insert(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        try:
            self._client.insert_arrow(table, rows)
        except Exception as exc:
            raise EngineError(_first_line(exc)) from None

    def close(self) -> None:
        self._client.close()


def quote_name(name: str) -> str:
    """An identifier, quoted for ClickHouse."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _chunks(stream: Any) -> Iterator[Any]:
    """The parts of a streamed result; EngineError when ClickHouse fails midway."""
    parts = iter(stream)
    while True:
        try:
            part = next(parts)
        except StopIteration:
            return
        except Exception as exc:
            raise EngineError(_first_line(exc)) from None
        yield part


def _os_error(exc: BaseException) -> str:
    """What the system said of a connection that failed (``Connection refused``), found
    among the errors that caused ``exc``; else ``exc``'s first line."""
    seen: BaseException | None = exc
    for _ in range(16):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _parse(url: str) -> tuple[str, dict[str, Any]]:
    """("chdb" or "server", the engine's arguments) for ``url``; EngineError if it is none."""
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise EngineError(f"{url}: a chdb URL names a folder: chdb:///path/to/store")
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        return "chdb", {"path": path, "database": database}
    if parts.scheme in ("clickhouse", "clickhouses"):
        secure = parts.scheme == "clickhouses"
        if not parts.hostname:
            raise EngineError(f"{url}: a clickhouse URL names a host: clickhouse://host:8123/db")
        port = parts.port or (8443 if secure else 8123)
        shown = f"{parts.scheme}://{parts.hostname}:{port}{parts.path}"  # (no password)
        return "server", {
            "url": shown,
            "host": parts.hostname,
            "port": port,
            "secure": secure,
            "user": unquote(parts.username or "default"),
            "password": unquote(parts.password or ""),
            "database": parts.path.strip("/") or DEFAULT_DATABASE,
        }
    raise EngineError(
        f"{url}: not a ClickHouse URL (clickhouse://host:8123/db or chdb:///path/to/store)"
    )


def database_of(url: str) -> str:
    """The database a ClickHouse URL names (`DEFAULT_DATABASE` when it names none)."""
    return str(_parse(url)[1]["database"])


def connect_engine(url: str) -> Engine:
    """The engine a ``clickhouse://`` or ``chdb://`` URL names (see the module docstring)."""
    kind, args = _parse(url)
    if kind == "chdb":
        return ChdbEngine(**args)
    return ServerEngine(**args)
