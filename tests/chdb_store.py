"""chDB for the ClickHouse tests: one data folder per test process (chDB's own rule), and
a fresh database in it for each test, so tests never see each other's rows."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid

import pytest

chdb = pytest.importorskip("chdb", reason="the ClickHouse tests need chDB (the [clickhouse] extra)")

from otel_threads.clickhouse.engine import Engine, connect_engine  # noqa: E402

_folder: str | None = None


def chdb_url(prefix: str = "t") -> str:
    """The URL of a new, empty database in this process's chDB folder."""
    global _folder
    if _folder is None:
        _folder = tempfile.mkdtemp(prefix="otel-threads-chdb-")
        atexit.register(shutil.rmtree, _folder, True)
    return f"chdb://{_folder}?database={prefix}_{uuid.uuid4().hex[:12]}"


def chdb_engine(prefix: str = "t") -> Engine:
    """An engine on a new, empty database (see `chdb_url`)."""
    return connect_engine(chdb_url(prefix))
