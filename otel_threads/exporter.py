"""In-process exporters that write the store's schema straight into a DuckDB file.

For scripts and notebooks with no collector. They encode with the SDK's own
OTLP encoders and then take exactly the path the collector takes (decode to
Arrow columns, then the group-committing writer), so the rows are identical.

Span and log exporters for the same file in one process share one writer
(DuckDB allows one writing process per file). `export` returns only after the
commit; `shutdown` is idempotent and closes the file when its last user goes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_threads.otlp.decode import decode_logs_request, decode_traces_request
from otel_threads.store import default_db_path
from otel_threads.store.writer import Writer

__all__ = ["DuckDBLogExporter", "DuckDBSpanExporter"]

_logger = logging.getLogger(__name__)

_shared: dict[str, tuple[Writer, int]] = {}
_shared_lock = threading.Lock()


def _acquire(path: str) -> Writer:
    key = os.path.abspath(path)
    with _shared_lock:
        writer, users = _shared.get(key, (None, 0))
        if writer is None:
            writer = Writer(path).start()
        _shared[key] = (writer, users + 1)
        return writer


def _release(path: str) -> None:
    key = os.path.abspath(path)
    with _shared_lock:
        writer, users = _shared[key]
        if users > 1:
            _shared[key] = (writer, users - 1)
            return
        del _shared[key]
    writer.close()


class _DuckDBExporter:
    def __init__(self, path: str | os.PathLike[str] | None, timeout_s: float) -> None:
        self.path = default_db_path(path)
        self.timeout_s = timeout_s
        self._writer: Writer | None = _acquire(self.path)
        self._lock = threading.Lock()
        self.failures = 0

    def _write(self, kind: str, batch) -> bool:
        writer = self._writer
        if writer is None:
            return False
        try:
            if batch.table.num_rows:
                writer.write(kind, batch.table, timeout=self.timeout_s)
            if batch.rejected:
                _logger.warning("%d %s not stored: %s", batch.rejected, kind, batch.error)
            return True
        except Exception:
            with self._lock:
                self.failures += 1
                first = self.failures == 1
            if first:
                _logger.exception(
                    "writing %s to %s failed (further failures are counted)", kind, self.path
                )
            return False

    def _shutdown(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            _release(self.path)


class DuckDBSpanExporter(_DuckDBExporter, SpanExporter):
    """Writes finished spans into the ``spans`` table of ``path`` (default: the store's)."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, timeout_s: float = 30.0
    ) -> None:
        super().__init__(path, timeout_s)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self._write("spans", decode_traces_request(encode_spans(spans)))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # export() returns after the commit: nothing is buffered here


class DuckDBLogExporter(_DuckDBExporter, LogRecordExporter):
    """Writes log records (GenAI events among them) into the ``logs`` table."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, timeout_s: float = 30.0
    ) -> None:
        super().__init__(path, timeout_s)

    def export(self, batch) -> LogRecordExportResult:
        ok = self._write("logs", decode_logs_request(encode_logs(batch)))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self._shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
