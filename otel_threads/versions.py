"""Change checks: cheap stamps of what a thread's detail and the threads list read, and
the HTTP entity tags made of them (the API answers 304 while a stamp holds)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import duckdb

__all__ = ["etag", "thread_version", "threads_version"]


def thread_version(con: duckdb.DuckDBPyConnection, thread_id: str) -> str | None:
    """A cheap stamp of what the thread's detail reads: it changes whenever the thread
    is derived anew (new spans or log records of it, a trace that moved, a rebuild).
    None when the store keeps no stamps (a file an older otel-threads wrote)."""
    try:
        build, version = con.execute(
            "SELECT (SELECT coalesce(max(version), 0) FROM derive_builds), "
            "(SELECT coalesce(max(version), 0) FROM thread_versions WHERE thread_id = ?)",
            [thread_id],
        ).fetchall()[0]
    except duckdb.CatalogException:
        return None
    return f"{build}.{version}"


def threads_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """A cheap stamp of the whole threads list: it changes when any thread is derived
    anew, when threads are deleted, and on a rebuild. None as for `thread_version`."""
    try:
        build, version, count = con.execute(
            "SELECT (SELECT coalesce(max(version), 0) FROM derive_builds), "
            "(SELECT coalesce(max(version), 0) FROM thread_versions), "
            "(SELECT count(*) FROM threads)"
        ).fetchall()[0]
    except duckdb.CatalogException:
        return None
    return f"{build}.{version}.{count}"


def etag(version: str, *request: Any) -> str:
    """An HTTP entity tag: the data's version and (a hash of) what was asked."""
    asked = hashlib.sha1(json.dumps(request, default=str).encode()).hexdigest()[:10]
    return f'"{version}-{asked}"'
