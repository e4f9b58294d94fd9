"""A collector in the test's own process, for tests (ours and yours).

    from otel_threads.collector.testing import running, sql

    with running(tmp_path / "t.duckdb") as c:       # loopback, ephemeral ports
        exporter = OTLPSpanExporter(endpoint=c.endpoints.grpc, insecure=True)
        ...
        assert sql(c, "SELECT thread_id FROM threads") == [("t1",)]

Receivers and the API listen on 127.0.0.1 at ports the system picks (none when
given ``None``); requests decode in the process (``parse_workers=0``) unless asked
otherwise. `sql` waits for derivation first, so it reads what was acknowledged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from otel_threads.collector.app import Collector
from otel_threads.collector.config import Config

__all__ = ["LOOPBACK", "running", "sql"]

#: Listen on the loopback address, at a port the system picks.
LOOPBACK = ("127.0.0.1", 0)


@contextlib.contextmanager
def running(db: str | os.PathLike[str], **config: Any) -> Iterator[Collector]:
    """A started collector on ``db`` (``Config`` fields in ``config``), stopped on exit."""
    settings: dict[str, Any] = {
        "parse_workers": 0,
        "grpc": LOOPBACK,
        "http": LOOPBACK,
        "api": LOOPBACK,
        **config,
    }
    collector = Collector(Config(db=str(db), **settings))
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


def sql(collector: Collector, query: str, *params: object, wait_s: float = 60.0) -> list[tuple]:
    """The rows of ``query`` once derivation has caught up (AssertionError if it has
    not within ``wait_s``)."""
    assert collector.reads.sync(wait_s), f"derivation did not catch up within {wait_s}s"
    with collector.reads.read() as cur:
        return cur.execute(query, list(params)).fetchall()
