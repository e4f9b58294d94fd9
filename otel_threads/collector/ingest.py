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
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otel_threads.collector.decode_pool import DecodePool, WorkerDied, decode_inline
from otel_threads.otlp.decode import DecodeError
from otel_threads.otlp.json_values import json_parse_bytes
from otel_threads.otlp.split import split_request
from otel_threads.otlp.tables import DecodedBatch
from otel_threads.store.writer import Overloaded, StoreUnavailable, Writer

__all__ = [
    "DEFAULT_INFLIGHT_BYTES",
    "MAX_REQUEST_BYTES",
    "ExportResult",
    "Hold",
    "Ingest",
    "RequestTooLarge",
    "Status",
    "status_for",
]

_logger = logging.getLogger(__name__)

_KIND = {"traces": "spans", "logs": "logs"}

#: Default of ``max_inflight_bytes`` (--max-ingest-memory).
DEFAULT_INFLIGHT_BYTES = 256 << 20
#: Default of ``max_request_bytes`` (--max-request-bytes).
MAX_REQUEST_BYTES = 16 << 20


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


class Hold:
    """What one export holds of the budget (`Ingest.admit`)."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self.held = 0  #: bytes, all told
        self.wire = 0  #: of them, bytes of request

    def __call__(self, n: int) -> None:
        """Reserve ``n`` more bytes of request, or raise `Overloaded`."""
        self._ingest._reserve(self, n, wire=True)

    def decoded(self, n: int) -> None:
        """Reserve ``n`` bytes that decoding holds (or give them back, n < 0)."""
        self._ingest._reserve(self, n, wire=False)


class Ingest:
    """Decode then write, with memory bounded by what exports under way hold.

    ``max_inflight_bytes`` caps the memory of the exports under way: their request
    bytes (charged as they arrive), what decoding them takes (a JSON request's parsed
    tree, charged before parsing from `json_parse_bytes`) and their decoded rows until
    committed. Request bytes alone are held to 4 x ``max_request_bytes`` besides:
    receiving a body costs twice its size for a moment (its pieces, then them joined).
    Past either, `export` raises `Overloaded` at once instead of queueing; the oldest
    export under way is always admitted (so the bound is the budget plus one request),
    unless its JSON alone would take more to parse than the budget (`RequestTooLarge`).
    """

    def __init__(
        self,
        writer: Writer,
        *,
        parse_workers: int = 0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_inflight_bytes: int = DEFAULT_INFLIGHT_BYTES,
    ) -> None:
        self.writer = writer
        self.parse_workers = parse_workers
        self.max_request_bytes = max_request_bytes
        self.max_inflight_bytes = max_inflight_bytes
        self.max_wire_bytes = 4 * max_request_bytes
        self._wire = 0
        self.rejected = {"traces": 0, "logs": 0}
        self.invalid_requests = 0
        self.overloaded = 0
        self._accepting = True
        self._inflight = 0
        self._lock = threading.Lock()
        self._holds: dict[int, Hold] = {}  # the exports under way, oldest first
        self._pool: DecodePool | None = None

    @property
    def inflight_bytes(self) -> int:
        return self._inflight

    def worker_pids(self) -> list[int]:
        """The decode worker processes' ids (none when decoding inline)."""
        pool = self._pool
        return pool.pids() if pool is not None else []

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
    def admit(self, size: int = 0) -> Iterator[Hold]:
        """Reserve ``size`` bytes of request for the block, or raise `Overloaded` /
        `ShuttingDown` at once. Yields the block's `Hold`: calling it reserves n more
        bytes of request the same way (receivers charge a body as its bytes arrive, not
        as its Content-Length announces, so a client that announces much and sends
        little holds nothing); ``hold.decoded(n)`` reserves what decoding takes (a
        negative n gives it back). The oldest export under way is always admitted."""
        hold = Hold(self)
        with self._lock:
            self._holds[id(hold)] = hold
        try:
            hold(size)
            yield hold
        finally:
            with self._lock:
                del self._holds[id(hold)]
                self._inflight -= hold.held
                self._wire -= hold.wire

    def _reserve(self, hold: Hold, n: int, wire: bool) -> None:
        with self._lock:
            if n > 0:
                if not self._accepting:
                    raise ShuttingDown("the collector is shutting down; retry against the next one")
                # the oldest export under way always goes on: bodies arriving side by
                # side cannot all be refused in turn, each for the bytes of the others
                oldest = next(iter(self._holds.values())) is hold
                if not oldest and self._inflight + n > self.max_inflight_bytes:
                    self.overloaded += 1
                    raise Overloaded(
                        self._inflight,
                        self.max_inflight_bytes,
                        self.writer.retry_after_s,
                        unit="bytes of exports under way",
                    )
                if not oldest and wire and self._wire + n > self.max_wire_bytes:
                    self.overloaded += 1
                    raise Overloaded(
                        self._wire,
                        self.max_wire_bytes,
                        self.writer.retry_after_s,
                        unit="bytes of requests",
                    )
            self._inflight += n
            hold.held += n
            if wire:
                self._wire += n
                hold.wire += n

    def export(self, signal: str, fmt: str, data: bytes, hold: Hold | None = None) -> ExportResult:
        """Decode and store one export request; returns after the commit. ``hold``:
        the caller's `admit` block, which holds the request's bytes already; without
        one, the request is admitted here.

        Raises `DecodeError`, `RequestTooLarge`, `Overloaded` or a write error:
        map them with `status_for`.
        """
        size = len(data)
        if size > self.max_request_bytes:
            raise RequestTooLarge(
                f"request is {size} bytes, over the limit of {self.max_request_bytes}"
            )
        with contextlib.ExitStack() as stack:
            if hold is None:
                hold = stack.enter_context(self.admit(size))
            try:
                batch = self._decode(signal, fmt, data, hold.decoded)
            except DecodeError:
                with self._lock:
                    self.invalid_requests += 1
                raise
            accepted, rejected, error = batch.accepted, batch.rejected, batch.error
            if batch.table.num_rows:
                written = self.writer.submit(_KIND[signal], batch.table).result()
                if written.rejected:  # a forking turn, refused (--on-fork reject)
                    accepted -= written.rejected
                    rejected += written.rejected
                    error = "; ".join(e for e in (error, written.error) if e)
            if rejected:
                with self._lock:
                    self.rejected[signal] += rejected
            return ExportResult(accepted, rejected, error)

    def _decode(
        self, signal: str, fmt: str, data: bytes, charge: Callable[[int], None]
    ) -> DecodedBatch:
        """Decode a request, charging the budget with what decoding holds: a protobuf
        one in pieces of about PIECE_BYTES (otel_threads.otlp.split; a small one is
        one piece), each piece's rows charged as it is decoded, so decoding holds one
        piece's intermediates at a time, not the whole request's; a JSON one with the
        memory its parsed tree takes, charged before parsing and given back after."""
        pool = self._pool
        decode = decode_inline if pool is None else pool.decode
        if fmt == "json":
            parse = json_parse_bytes(data)
            if parse > self.max_inflight_bytes:
                raise RequestTooLarge(
                    f"this JSON request would take about {parse >> 20} MiB to parse, over "
                    f"the limit of {self.max_inflight_bytes >> 20} MiB (--max-ingest-memory); "
                    f"send smaller batches, or protobuf"
                )
            charge(parse)
            try:
                out = decode(signal, fmt, data)
            finally:
                charge(-parse)
            charge(out.table.nbytes)
            return out
        pieces = []
        for piece in split_request(data):
            pieces.append(decode(signal, fmt, piece))
            charge(pieces[-1].table.nbytes)
        return DecodedBatch.join(pieces)
