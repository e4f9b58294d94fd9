"""OTLP/HTTP receiver: POST /v1/traces and /v1/logs, protobuf or JSON, optionally gzip.

Replies follow the OTLP/HTTP spec: the Export*ServiceResponse in the request's
encoding (with ``partialSuccess`` when some items were rejected), or a
``google.rpc.Status`` body with 400 / 413 / 415 / 503 (+ ``Retry-After``).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from google.protobuf import json_format
from google.rpc import status_pb2

from otel_threads.collector.httpbase import BaseHandler
from otel_threads.collector.ingest import Ingest, RequestTooLarge, Status, status_for
from otel_threads.otlp.decode import DecodeError

__all__ = ["OtlpHttpHandler", "inflate"]

_PATHS = {"/v1/traces": "traces", "/v1/logs": "logs"}
_MEDIA = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}


def inflate(data: bytes, limit: int) -> bytes:
    """Gunzip ``data``, refusing (RequestTooLarge) output over ``limit`` bytes.

    Reads at most ``limit + 1`` bytes of output, so a gzip bomb costs no memory.
    A body that is not valid gzip raises ValueError.
    """
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"body is not valid gzip: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise RequestTooLarge(f"gzip body inflates to more than the limit of {limit} bytes")
    if not d.eof:
        raise ValueError("body is not valid gzip: truncated")
    return out


class OtlpHttpHandler(BaseHandler):
    ingest: Ingest  # set by HttpListener

    def do_POST(self) -> None:
        if not self.authorized():
            return
        path = self.path.split("?", 1)[0]
        signal = _PATHS.get(path)
        if signal is None:
            self.reply_json(404, {"error": f"no such endpoint {path}; use /v1/traces or /v1/logs"})
            return
        media = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        fmt = _MEDIA.get(media)
        if fmt is None:
            self.reply_json(
                415,
                {
                    "error": f"unsupported Content-Type {media!r}: use "
                    "application/x-protobuf or application/json"
                },
            )
            return
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            self.reply_json(415, {"error": f"unsupported Content-Encoding {encoding!r}: use gzip"})
            return
        limit = self.ingest.max_request_bytes
        try:
            # the budget is charged as the body arrives: memory stays bounded, and a
            # client that announces a large body and sends little holds nothing
            with self.ingest.admit() as charge:
                body = self.read_body(limit, charge)
                if body is None:
                    return
                if encoding == "gzip":
                    try:
                        body = inflate(body, limit)
                    except RequestTooLarge:
                        raise
                    except ValueError as exc:
                        raise DecodeError(str(exc)) from None
                    charge(len(body))
                res = self.ingest.export(signal, fmt, body, hold=charge)
        except Exception as exc:
            st = status_for(exc)
            if st.http_status == 503 and self.body_pending:
                # refused mid-body (the budget): read the rest and drop it, so the
                # exporter reads the 503 and its Retry-After rather than a reset
                self.discard_body(limit)
            self._status(fmt, st)
            return
        self._message(fmt, 200, res.response(signal))

    def do_GET(self) -> None:
        self.reply_json(405, {"error": "OTLP/HTTP takes POST"}, {"Allow": "POST"})

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _status(self, fmt: str, st: Status) -> None:
        """An error answer: `status_for`'s HTTP status, with a google.rpc.Status body
        carrying its gRPC code (one mapping for both receivers)."""
        headers = {}
        if st.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(st.retry_after_s)))
        code = st.grpc_code.value[0]
        self._message(
            fmt,
            st.http_status,
            status_pb2.Status(code=code, message=st.message),
            headers,
            close=st.http_status in (413, 503),
        )

    def _message(
        self,
        fmt: str,
        http_status: int,
        msg: Any,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        # `close`: the body may be unread (refused before reading): end the connection.
        if fmt == "json":
            body = json_format.MessageToJson(msg, indent=None).encode()
            self.reply(http_status, body, "application/json", headers, close)
        else:
            self.reply(
                http_status, msg.SerializeToString(), "application/x-protobuf", headers, close
            )
