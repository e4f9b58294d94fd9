"""The otel-threads collector: an OTLP receiver (gRPC and HTTP, traces and logs)
that writes into one DuckDB file and serves the query API.

It imports `otel_threads` (store, decode, writer); `otel_threads` never imports it.
Its names are imported when first used: `python -m otel_threads.collector` imports this
package first, and may start its process again (otel_threads.collector.allocator)
before it needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["SETTINGS", "Collector", "Config", "ConfigError", "Endpoints"]

_MODULES = {
    "Collector": "app",
    "Endpoints": "app",
    "SETTINGS": "config",
    "Config": "config",
    "ConfigError": "config",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(import_module(f"otel_threads.collector.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
