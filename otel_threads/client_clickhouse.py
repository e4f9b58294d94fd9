"""What `ThreadsClient` does differently on a ClickHouse store (otel_threads.clickhouse).

The threads list runs on ClickHouse, one thread's detail on the thread derived alone
(`ClickHouseReader`); annotating and evaluating need a file or a collector's API there.
A ClickHouse that fails is a `ThreadsClientError`, naming the URL without its password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import duckdb

from otel_threads.client_errors import ThreadsClientError
from otel_threads.request import ThreadsQueryReq
from otel_threads.schemas import ThreadsQueryRes

if TYPE_CHECKING:
    from otel_threads.clickhouse.reading import ClickHouseReader

__all__ = ["CLICKHOUSE_SCHEMES", "ClickHouseSource", "open_clickhouse"]

#: URL schemes of a store on ClickHouse (otel_threads.clickhouse.engine).
CLICKHOUSE_SCHEMES = ("clickhouse://", "clickhouses://", "chdb://")


def open_clickhouse(target: str) -> ClickHouseReader | None:
    """A reader of the ClickHouse store ``target`` names; None when it names none."""
    if not target.startswith(CLICKHOUSE_SCHEMES):
        return None
    from otel_threads.clickhouse.engine import EngineError, connect_engine
    from otel_threads.clickhouse.reading import ClickHouseReader

    try:
        return ClickHouseReader(connect_engine(target))
    except EngineError as exc:
        raise ThreadsClientError(str(exc)) from None


class ClickHouseSource:
    """`ThreadsClient`'s part for a store on ClickHouse (``self.clickhouse``)."""

    clickhouse: ClickHouseReader | None
    path: str | None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    def _file_only(self) -> None:
        if self.clickhouse is not None:
            raise ThreadsClientError(
                f"{self.clickhouse.engine.url}: annotations and evaluations are written to a "
                "DuckDB file or through a collector's API; on ClickHouse they arrive over OTLP"
            )

    def close(self) -> None:
        """Let go of a ClickHouse connection (a file or an API holds nothing between calls)."""
        if self.clickhouse is not None:
            self.clickhouse.close()

    def _where(self) -> str:
        return str(self.clickhouse.engine.url if self.clickhouse is not None else self.path)

    def _clickhouse_threads(self, req: ThreadsQueryReq) -> ThreadsQueryRes:
        from otel_threads.clickhouse.engine import EngineError

        assert self.clickhouse is not None
        try:
            return self.clickhouse.threads_query(req)
        except EngineError as exc:
            raise ThreadsClientError(f"{self._where()}: {exc}") from None

    def _read(self, thread_id: str) -> Any:
        """A connection to read ``thread_id``'s detail from (the file, or on ClickHouse
        the thread derived alone: `ClickHouseReader.thread_store`)."""
        if self.clickhouse is not None:
            return self._clickhouse_thread(thread_id)
        return self._connection()

    @contextlib.contextmanager
    def _clickhouse_thread(self, thread_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
        from otel_threads.clickhouse.engine import EngineError

        assert self.clickhouse is not None
        try:
            with self.clickhouse.thread_store(thread_id) as con:
                yield con
        except EngineError as exc:
            raise ThreadsClientError(f"{self._where()}: {exc}") from None
