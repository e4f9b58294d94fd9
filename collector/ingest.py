"""From received bytes to committed rows: decode (in worker processes) then write.

The receivers only receive: they hand request bytes to `Ingest.export` and map
what it returns or raises to the wire with `status_for`, the one place where
errors become OTLP status codes.

Decoding OTLP into Arrow columns is the CPU-heavy part, so it runs in a pool of
processes (``parse_workers``); with 0 it runs in the calling thread. The single
writer thread then group-commits, and `export` returns only after the commit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector.decode_pool import DecodePool, WorkerDied, decode_inline
from otel_threads.decode import DecodeError
from otel_threads.decode_split import PIECE_BYTES, split_request
from otel_threads.writer import Overloaded, StoreUnavailable, Writer

__all__ = ["ExportResult", "Ingest", "RequestTooLarge", "Status", "status_for"]

_logger = logging.getLogger(__name__)

_KIND = {"traces": "spans", "logs": "logs"}


class ShuttingDown(RuntimeError):
    """The collector is stopping and takes no new exports."""


class RequestTooLarge(ValueError):
    """The request (after inflation) is larger than the configured limit."""


@dataclass(frozen=True)
class ExportResult:
    """What an export stored: accepted rows, rejected rows and why (partial success)."""

    accepted: int
    rejected: int
    error: str | None

    def response(self, signal: str) -> Any:
        """The OTLP Export*ServiceResponse, with partial_success when rows were rejected."""
        if signal == "traces":
            out: Any = trace_service_pb2.ExportTraceServiceResponse()
            if self.rejected:
                out.partial_success.rejected_spans = self.rejected
        else:
            out = logs_service_pb2.ExportLogsServiceResponse()
            if self.rejected:
                out.partial_success.rejected_log_records = self.rejected
        if self.rejected:
            out.partial_success.error_message = self.error or ""
        return out


@dataclass(frozen=True)
class Status:
    """How an outcome goes on the wire."""

    grpc_code: grpc.StatusCode
    http_status: int
    message: str
    retry_after_s: float | None = None


def status_for(exc: BaseException) -> Status:
    """Map an exception from `Ingest.export` (or a receiver) to OTLP status codes."""
    if isinstance(exc, DecodeError):
        return Status(grpc.StatusCode.INVALID_ARGUMENT, 400, str(exc))
    if isinstance(exc, RequestTooLarge):
        return Status(grpc.StatusCode.RESOURCE_EXHAUSTED, 413, str(exc))
    if isinstance(exc, Overloaded):
        return Status(grpc.StatusCode.UNAVAILABLE, 503, str(exc), exc.retry_after_s)
    if isinstance(exc, StoreUnavailable):
        return Status(grpc.StatusCode.UNAVAILABLE, 503, str(exc), exc.retry_after_s)
    if isinstance(exc, ShuttingDown):
        return Status(grpc.StatusCode.UNAVAILABLE, 503, str(exc), 1.0)
    if isinstance(exc, WorkerDied):
        return Status(grpc.StatusCode.UNAVAILABLE, 503, "a decode worker died; retry", 1.0)
    # Anything else is ours (the write failed, e.g. disk full): retryable.
    return Status(grpc.StatusCode.UNAVAILABLE, 503, f"could not store the data: {exc}", 1.0)


class Ingest:
    """Decode then write, with memory bounded by bytes in flight.

    ``max_inflight_bytes`` caps request bytes being decoded or written at once;
    past it, `export` raises `Overloaded` at once instead of queueing.
    """

    def __init__(self, writer: Writer, *, parse_workers: int = 0,
                 max_request_bytes: int = 16 << 20, max_inflight_bytes: int | None = None) -> None:
        self.writer = writer
        self.parse_workers = parse_workers
        self.max_request_bytes = max_request_bytes
        self.max_inflight_bytes = max_inflight_bytes or 4 * max_request_bytes
        self.rejected = {"traces": 0, "logs": 0}
        self.invalid_requests = 0
        self.overloaded = 0
        self._accepting = True
        self._inflight = 0
        self._lock = threading.Lock()
        self._pool: DecodePool | None = None

    @property
    def inflight_bytes(self) -> int:
        return self._inflight

    def start(self) -> Ingest:
        """Start the decode processes (and wait until each has imported its code)."""
        if self.parse_workers > 0 and self._pool is None:
            self._pool = DecodePool(self.parse_workers)
            self._pool.warm()
        return self

    def drain(self, timeout: float) -> bool:
        """Refuse new exports, then wait for those under way; True when none is left."""
        with self._lock:
            self._accepting = False
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._inflight

    def close(self) -> None:
        """Stop the decode processes. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextlib.contextmanager
    def admit(self, size: int = 0) -> Iterator[Callable[[int], None]]:
        """Reserve ``size`` bytes of the in-flight budget for the block, or raise
        `Overloaded` / `ShuttingDown` at once. Yields ``grow(n)``, which reserves n more
        bytes the same way: receivers charge a body as its bytes arrive (not as its
        Content-Length announces), so a client that announces much and sends little
        holds nothing. One request alone is always admitted."""
        held = 0

        def grow(n: int) -> None:
            nonlocal held
            with self._lock:
                if not self._accepting:
                    raise ShuttingDown("the collector is shutting down; retry against the "
                                       "next one")
                if self._inflight and self._inflight + n > self.max_inflight_bytes:
                    self.overloaded += 1
                    raise Overloaded(self._inflight, self.max_inflight_bytes,
                                     self.writer.retry_after_s, unit="bytes of requests")
                self._inflight += n
                held += n

        grow(size)
        try:
            yield grow
        finally:
            with self._lock:
                self._inflight -= held

    def export(self, signal: str, fmt: str, data: bytes, admitted: bool = False
               ) -> ExportResult:
        """Decode and store one export request; returns after the commit. ``admitted``:
        the caller holds the request's bytes in the budget already (`admit`).

        Raises `DecodeError`, `RequestTooLarge`, `Overloaded` or a write error:
        map them with `status_for`.
        """
        size = len(data)
        if size > self.max_request_bytes:
            raise RequestTooLarge(
                f"request is {size} bytes, over the limit of {self.max_request_bytes}"
            )
        with self.admit(0 if admitted else size):
            try:
                table, accepted, rejected, error = self._decode(signal, fmt, data)
            except DecodeError:
                with self._lock:
                    self.invalid_requests += 1
                raise
            if table.num_rows:
                written = self.writer.submit(_KIND[signal], table).result()
                if written.rejected:  # a forking turn, refused (--on-fork reject)
                    accepted -= written.rejected
                    rejected += written.rejected
                    error = "; ".join(e for e in (error, written.error) if e)
            if rejected:
                with self._lock:
                    self.rejected[signal] += rejected
            return ExportResult(accepted, rejected, error)

    def _decode(self, signal: str, fmt: str, data: bytes) -> tuple[pa.Table, int, int, str | None]:
        """Decode a request; a large protobuf one in pieces of about PIECE_BYTES
        (otel_threads.decode_split), so decoding holds one piece's intermediates at a
        time, not the whole request's."""
        pool = self._pool
        decode = decode_inline if pool is None else pool.decode
        if fmt != "protobuf" or len(data) <= PIECE_BYTES:
            return decode(signal, fmt, data)
        tables, accepted, rejected, errors = [], 0, 0, []
        for piece in split_request(data):
            table, a, r, e = decode(signal, fmt, piece)
            tables.append(table)
            accepted, rejected = accepted + a, rejected + r
            if e and e not in errors:
                errors.append(e)
        table = (pa.concat_tables(tables, promote_options="default") if len(tables) > 1
                 else tables[0])
        return table, accepted, rejected, "; ".join(errors) or None
