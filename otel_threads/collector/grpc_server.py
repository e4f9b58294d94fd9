"""OTLP/gRPC receiver: TraceService/Export and LogsService/Export.

The services are registered as generic handlers on the method names of the
`opentelemetry-proto` stubs, taking the request as raw bytes: decoding happens
once, in a decode worker, instead of once here to a message and again there.
Responses are the stubs' own ``Export*ServiceResponse`` messages.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from otel_threads.collector.config import Config
from otel_threads.collector.ingest import Ingest, status_for
from otel_threads.collector.ports import in_use

__all__ = ["GrpcReceiver"]

# A call that has begun must send its request message within --client-timeout
# (Config.client_timeout); one that sends none (or dribbles it) is cancelled, so slow
# calls cannot hold every slot.
#: Most calls one HTTP/2 connection has open at once.
STREAMS_PER_CONNECTION = 8
#: An HTTP/2 connection with no call for this long is closed (clients reconnect).
IDLE_CONNECTION_MS = 5 * 60 * 1000

_TRACE_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
_LOGS_SERVICE = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name


def _retry_metadata(seconds: float) -> tuple[tuple[str, bytes], ...]:
    delay = Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))
    return (("google.rpc.retryinfo-bin", RetryInfo(retry_delay=delay).SerializeToString()),)


class _TokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <token>`` (constant-time compare)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def deny(requests: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        # a streaming handler is called without waiting for the request message: a call
        # without the token ends at once, holding no thread and no slot of the server
        self._deny = grpc.stream_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(str(given).encode(), self._expected):
            return continuation(details)
        return self._deny


class GrpcReceiver:
    """The gRPC listener. `start` binds and returns the bound port; `stop` is idempotent."""

    def __init__(self, config: Config, ingest: Ingest, max_threads: int = 32) -> None:
        self.config = config
        self.ingest = ingest
        self.port: int | None = None
        interceptors = [_TokenInterceptor(config.token)] if config.token else []
        limit = config.max_request_bytes
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_threads, thread_name_prefix="otlp-grpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 << 20),
                # a second collector must not share this port (and split the data)
                ("grpc.so_reuseport", 0),
                ("grpc.max_connection_idle_ms", IDLE_CONNECTION_MS),
                # one connection cannot hold every slot (calls past this wait client-side)
                ("grpc.max_concurrent_streams", STREAMS_PER_CONNECTION),
            ],
            # calls past this are refused with RESOURCE_EXHAUSTED (which exporters
            # retry) instead of queueing: with max_request_bytes, memory stays bounded
            maximum_concurrent_rpcs=max_threads,
        )
        self._server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    _TRACE_SERVICE,
                    {
                        "Export": grpc.stream_unary_rpc_method_handler(
                            self._export_traces,
                            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
                        )
                    },
                ),
                grpc.method_handlers_generic_handler(
                    _LOGS_SERVICE,
                    {
                        "Export": grpc.stream_unary_rpc_method_handler(
                            self._export_logs,
                            response_serializer=logs_service_pb2.ExportLogsServiceResponse.SerializeToString,
                        )
                    },
                ),
            )
        )

    def start(self) -> int:
        assert self.config.grpc is not None
        host, port = self.config.grpc
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if self.config.tls_cert and self.config.tls_key:
                creds = grpc.ssl_server_credentials(
                    [
                        (
                            Path(self.config.tls_key).read_bytes(),
                            Path(self.config.tls_cert).read_bytes(),
                        )
                    ]
                )
                self.port = self._server.add_secure_port(address, creds)
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            if "Failed to bind" in str(exc):  # gRPC's words for an address in use
                raise OSError(in_use(host, port, "--grpc")) from None
            raise OSError(f"cannot listen on {address} (--grpc): {exc}") from None
        if not self.port:
            raise OSError(in_use(host, port, "--grpc"))
        self._server.start()
        return self.port

    def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls; calls under way get ``grace`` seconds to finish."""
        self._server.stop(grace).wait()

    def _export_traces(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        return self._export("traces", requests, context)

    def _export_logs(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        return self._export("logs", requests, context)

    def _export(self, signal: str, requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        """Export is unary; it is served as client-streaming (the wire is the same) so
        that reading the message has a deadline (--client-timeout)."""
        timer = threading.Timer(self.config.client_timeout, context.cancel)
        timer.start()
        try:
            request = next(requests, None)
        finally:
            timer.cancel()
        if request is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call sent no request message")
        try:
            return self.ingest.export(signal, "protobuf", request).response(signal)
        except Exception as exc:
            status = status_for(exc)
            if status.retry_after_s is not None:
                context.set_trailing_metadata(_retry_metadata(status.retry_after_s))
            context.abort(status.grpc_code, status.message)
