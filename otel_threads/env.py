"""The environment variables the library reads: one table, one way to read them.

The collector's own settings (``--grpc``, ``--retention``...) are in
``collector.config.SETTINGS``, which names these where they overlap (the database file,
the token). The OpenTelemetry SDK's own variables (``OTEL_EXPORTER_OTLP_*``) are the
SDK's, read where the exporters are made (otel_threads.bootstrap).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["DB", "FAST_PATH", "SPEEDUPS", "TOKEN", "VARIABLES", "EnvVar", "enabled", "value"]


@dataclass(frozen=True)
class EnvVar:
    """One variable: its name, the value it has when unset, and what it does."""

    name: str
    default: str | None
    help: str


DB = EnvVar(
    "OTEL_THREADS_DB", "otel-threads.duckdb", "The database file, when no argument names one."
)
TOKEN = EnvVar(
    "OTEL_THREADS_TOKEN",
    None,
    "The bearer token the collector requires (--token), sent by ThreadsClient and the CLI.",
)
SPEEDUPS = EnvVar(
    "OTEL_THREADS_SPEEDUPS",
    "1",
    "0 decodes attribute values in Python instead of the C accelerator (read at import).",
)
FAST_PATH = EnvVar(
    "OTEL_THREADS_FAST_PATH",
    "0",
    "1 lets ThreadSpanProcessor write attributes into the SDK's span directly "
    "(otel_threads.sdk_fast_path).",
)

VARIABLES = (DB, TOKEN, SPEEDUPS, FAST_PATH)

_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")


def value(var: EnvVar) -> str | None:
    """The variable's value; its default when unset or empty."""
    return os.environ.get(var.name) or var.default


def enabled(var: EnvVar) -> bool:
    """A switch: on for 1/true/yes/on, off for 0/false/no/off (any case); anything else
    is the default."""
    text = (os.environ.get(var.name) or "").strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    return (var.default or "").strip().lower() in _YES
