"""otel-threads: multi-turn conversations (threads) from OpenTelemetry traces.

Public names are re-exported here; modules are internal. The storage-side names
(exporters, `configure`) load DuckDB and Arrow, so they are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_threads.context import (
    CONVERSATION_ID_KEY,
    ThreadContext,
    current_thread_id,
    current_turn_id,
    thread,
)
from otel_threads.processor import ThreadSpanProcessor

if TYPE_CHECKING:
    from otel_threads.bootstrap import Configured, configure
    from otel_threads.client import ThreadNotFoundError, ThreadsClient, ThreadsClientError
    from otel_threads.evaluations import EvaluationResult
    from otel_threads.exporter import DuckDBLogExporter, DuckDBSpanExporter
    from otel_threads.filters import ThreadFilter
    from otel_threads.schemas import (
        ForkSchema,
        SortBy,
        ThreadDetail,
        ThreadSchema,
        ThreadsQueryReq,
        ThreadsQueryRes,
        TranscriptMessage,
        TurnSchema,
    )
    from otel_threads.store import StoreLockedError

__all__ = [
    "CONVERSATION_ID_KEY",
    "Configured",
    "DuckDBLogExporter",
    "DuckDBSpanExporter",
    "EvaluationResult",
    "ForkSchema",
    "SortBy",
    "StoreLockedError",
    "ThreadContext",
    "ThreadDetail",
    "ThreadFilter",
    "ThreadNotFoundError",
    "ThreadSchema",
    "ThreadSpanProcessor",
    "ThreadsClient",
    "ThreadsClientError",
    "ThreadsQueryReq",
    "ThreadsQueryRes",
    "TranscriptMessage",
    "TurnSchema",
    "configure",
    "current_thread_id",
    "current_turn_id",
    "thread",
]
__version__ = "0.1.0"

_LAZY = {
    "configure": "otel_threads.bootstrap",
    "Configured": "otel_threads.bootstrap",
    "DuckDBSpanExporter": "otel_threads.exporter",
    "DuckDBLogExporter": "otel_threads.exporter",
    "StoreLockedError": "otel_threads.store",
    "ThreadsClient": "otel_threads.client",
    "ThreadsClientError": "otel_threads.client",
    "ThreadNotFoundError": "otel_threads.client",
    "ThreadFilter": "otel_threads.filters",
    "EvaluationResult": "otel_threads.evaluations",
    **dict.fromkeys(
        (
            "ForkSchema",
            "SortBy",
            "ThreadDetail",
            "ThreadSchema",
            "ThreadsQueryReq",
            "ThreadsQueryRes",
            "TranscriptMessage",
            "TurnSchema",
        ),
        "otel_threads.schemas",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_threads' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
