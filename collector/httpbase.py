"""What the two HTTP listeners (OTLP/HTTP and the API) share: server, TLS, token, replies."""

from __future__ import annotations

import hmac
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from collector.config import Config

__all__ = ["BaseHandler", "HttpListener"]


class BaseHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; every reply has a Content-Length."""

    protocol_version = "HTTP/1.1"
    server_version = "otel-threads"
    config: Config  # set on the subclass made by `HttpListener`
    #: paths answered without a token (health checks from load balancers)
    open_paths: frozenset[str] = frozenset()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging: requests are counted, not logged."""

    def authorized(self) -> bool:
        """Check the bearer token (if one is configured); reply 401 when it fails."""
        token = self.config.token
        if not token or self.path.split("?", 1)[0] in self.open_paths:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
        self.reply(401, b'{"error": "missing or wrong bearer token"}', "application/json",
                   {"WWW-Authenticate": "Bearer"})
        return False

    def reply(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, default=str, ensure_ascii=False).encode()
        self.reply(status, body, "application/json", headers)

    def discard_body(self, size: int, cap: int = 32 << 20) -> None:
        """Read and drop up to ``cap`` bytes of a body we refuse, in small chunks, so
        the client gets to read our answer instead of a broken pipe."""
        left = min(size, cap)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            self.close_connection = True

    def read_body(self, limit: int) -> bytes | None:
        """The request body, or None after replying 411/413 (too large is not read)."""
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.reply(411, b'{"error": "Content-Length is required"}', "application/json",
                       close=True)
            return None
        size = int(length)
        if size > limit:
            self.discard_body(size)
            self.reply(413, json.dumps(
                {"error": f"request body is {size} bytes, over the limit of {limit}"}
            ).encode(), "application/json", close=True)
            return None
        body = self.rfile.read(size)
        if len(body) < size:  # the client went away mid-body: store nothing of it
            self.reply(400, json.dumps(
                {"error": f"request body ended after {len(body)} of {size} bytes"}
            ).encode(), "application/json", close=True)
            return None
        return body


#: Seconds a connection may sit idle (or take over a TLS handshake) before it is closed.
CONNECTION_TIMEOUT_S = 60.0


class _Server(ThreadingHTTPServer):
    """A thread per connection; TLS handshakes happen there, never in accept()."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 resets bursts of exporters
    tls: ssl.SSLContext | None = None
    connection_errors = 0

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CONNECTION_TIMEOUT_S)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                self.connection_errors += 1
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is counted, not logged with a traceback."""
        self.connection_errors += 1


class _V6Server(_Server):
    address_family = socket.AF_INET6


class HttpListener:
    """A threaded HTTP server on its own thread. `start` returns the bound port."""

    def __init__(self, config: Config, address: tuple[str, int], handler: type[BaseHandler],
                 name: str, flag: str, **attrs: Any) -> None:
        self.config = config
        self.address = address
        self.name = name
        self.flag = flag
        self._handler = type(handler.__name__, (handler,), {"config": config, **attrs})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def start(self) -> int:
        host, port = self.address
        server_cls = _V6Server if ":" in host else _Server
        try:
            server = server_cls((host, port), self._handler)
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port} ({self.flag}): "
                          f"{exc.strerror or exc}") from None
        if self.config.tls_cert and self.config.tls_key:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
            server.tls = ctx
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2},
            name=f"otel-threads-{self.name}", daemon=True,
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop accepting; idempotent and safe before `start`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
