"""The otel-threads collector: an OTLP receiver (gRPC and HTTP, traces and logs)
that writes into one DuckDB file and serves the query API.

It imports `otel_threads` (store, decode, writer); `otel_threads` never imports it.
"""

from otel_threads.collector.app import Collector, Endpoints
from otel_threads.collector.config import SETTINGS, Config, ConfigError

__all__ = ["SETTINGS", "Collector", "Config", "ConfigError", "Endpoints"]
