"""`ReadsBackend`: what the query API and its web page read through, whatever holds the
threads.

The API's handler (otel_threads.collector.api) answers the same routes the same way over
any of them: a DuckDB store's `otel_threads.store.reads.Reads` (the collector's file) or
`otel_threads.clickhouse.serving.ClickHouseReads` (``otel-threads serve --clickhouse``).
Each method is called from many request threads at once, and answers what the functions
of `otel_threads.query` answer on a file; a ValueError (one line) is the caller's
mistake: an HTTP 400.
"""

from __future__ import annotations

from typing import Any, Protocol

from otel_threads.schemas import ThreadDetail, ThreadsQueryReq, ThreadsQueryRes
from otel_threads.store.health import Fault

__all__ = ["ReadsBackend"]


class ReadsBackend(Protocol):
    #: None when the API writes annotations and evaluators' results here; otherwise why
    #: it does not (one line, what the write routes answer)
    writes_refused: str | None

    @property
    def fault(self) -> Fault | None:
        """Why the store cannot serve now (``kind`` is what /healthz says), or None."""

    def sync(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for what was acknowledged to be derived (a read
        that wants its writes); whether it was. True at once where nothing derives here."""

    def threads_version(self) -> str | None:
        """A stamp of the threads list that changes whenever the list may (an ETag's
        version); taken before the read it stamps. None: no stamps here."""

    def threads(
        self, req: ThreadsQueryReq, page_sort: list[tuple[str, str]] | None = None
    ) -> ThreadsQueryRes:
        """`otel_threads.query.query_threads`."""

    def thread_version(self, thread_id: str) -> str | None:
        """A stamp of one thread's detail, as `threads_version` is of the list."""

    def thread_page(
        self, thread_id: str, through_turn: str | None = None, **paging: Any
    ) -> ThreadDetail | None:
        """`otel_threads.paging.query_thread_page`."""

    def turn_spans(self, thread_id: str, turn_id: str) -> list[dict[str, Any]] | None:
        """`otel_threads.query.query_turn_spans`."""

    def span_messages(self, thread_id: str, turn_id: str, span_id: str) -> dict[str, Any] | None:
        """`otel_threads.span_messages.query_span_messages`."""

    def sql(self, sql: str) -> dict[str, Any]:
        """One read-only statement in the store's own SQL: ``{"columns", "rows",
        "truncated"}``, cut to the limits of `otel_threads.store.readonly_sql`."""

    def arrow(self, sql: str, params: Any = None) -> bytes:
        """One read-only statement, whole, as an Arrow IPC stream (refused past
        `otel_threads.store.readonly_sql.ARROW_MAX_BYTES`); ``params`` for its ``?``."""
