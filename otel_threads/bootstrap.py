"""`configure()`: one call that sets up tracing (and GenAI log events) with threads.

    import otel_threads
    otel_threads.configure(service_name="support-bot")                  # to a collector
    otel_threads.configure(db="chats.duckdb", service_name="notebook")   # to a local file

It installs `ThreadSpanProcessor` first, then a batch processor exporting either
over OTLP (to ``endpoint``, else the standard ``OTEL_EXPORTER_OTLP_*`` variables,
else the collector's default address) or into a DuckDB file. Log records go the
same way, so GenAI events emitted as logs (the official instrumentations'
default) are kept too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_threads.processor import ThreadSpanProcessor

__all__ = ["Configured", "configure"]

_PROTOCOLS = ("grpc", "http/protobuf")
_DEFAULT_ENDPOINT = {"grpc": "http://127.0.0.1:4317", "http/protobuf": "http://127.0.0.1:4318"}


@dataclass
class Configured:
    """What `configure` made. `shutdown` flushes and closes both providers."""

    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    destination: str

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def _otlp_exporters(endpoint: str | None, protocol: str) -> tuple[SpanExporter, LogRecordExporter]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint), OTLPLogExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    base = endpoint.rstrip("/") if endpoint else None
    return (
        HttpSpans(endpoint=f"{base}/v1/traces" if base else None),
        HttpLogs(endpoint=f"{base}/v1/logs" if base else None),
    )


def configure(
    *,
    service_name: str | None = None,
    project: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    db: str | os.PathLike[str] | None = None,
    compat: Iterable[str] = (),
    set_global: bool = True,
) -> Configured:
    """Set up a TracerProvider and LoggerProvider with threads, exporting somewhere.

    ``db``: write into this DuckDB file in-process (no collector). Otherwise
    export over OTLP: ``protocol`` is "grpc" or "http/protobuf" (default: the
    ``OTEL_EXPORTER_OTLP_PROTOCOL`` variable, else grpc); ``endpoint`` is the
    collector's base URL (default: ``OTEL_EXPORTER_OTLP_ENDPOINT``, else the
    collector's default address). ``project`` sets resource attribute
    ``otel_threads.project``. ``set_global`` installs both providers globally,
    which instrumentation libraries use.
    """
    attrs: dict[str, str] = {}
    if service_name:
        attrs["service.name"] = service_name
    if project:
        attrs["otel_threads.project"] = project
    resource = Resource.create(attrs)
    if db is not None:
        from otel_threads.exporter import DuckDBLogExporter, DuckDBSpanExporter

        span_exporter: SpanExporter = DuckDBSpanExporter(db)
        log_exporter: LogRecordExporter = DuckDBLogExporter(db)
        destination = f"duckdb:{os.fspath(db)}"
    else:
        proto = (protocol or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").lower()
        if proto not in _PROTOCOLS:
            raise ValueError(f"protocol must be one of {_PROTOCOLS}, got {proto!r}")
        if endpoint is None and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            endpoint = _DEFAULT_ENDPOINT[proto]
        span_exporter, log_exporter = _otlp_exporters(endpoint, proto)
        destination = f"otlp {proto}:{endpoint or os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']}"
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        ThreadSpanProcessor(compat=compat, tracer_provider=tracer_provider)
    )
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    if set_global:
        trace.set_tracer_provider(tracer_provider)
        set_logger_provider(logger_provider)
    return Configured(tracer_provider, logger_provider, destination)
