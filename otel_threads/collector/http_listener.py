"""`HttpListener`: one HTTP listener, a uvicorn server (HTTP/1.1 parsed by h11) on its
own thread and event loop, with what uvicorn lacks against slow and idle clients;
its requests run `BaseHandler` subclasses (otel_threads.collector.httpbase) on a
thread pool."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from otel_threads.collector.config import Config
from otel_threads.collector.httpbase import BaseHandler
from otel_threads.collector.ports import in_use

__all__ = ["MAX_CONNECTIONS", "HttpListener"]

#: Seconds a keep-alive connection may sit idle between requests before it is closed.
KEEP_ALIVE_S = 30
#: Most handlers running at once per listener; more requests wait for a thread.
HANDLER_THREADS = 64
# Deadlines for slow clients, from --client-timeout (Config.client_timeout, 30 s):
#   - a whole body must arrive within it once its handler reads it;
#   - a body may pause between two pieces for a third of it (a client dribbling bytes
#     is cut off: 408);
#   - a connection's first byte (or its opening) to the end of a request's headers
#     takes at most a third of it: a client that sends nothing, or dribbles its
#     headers, is disconnected.
#: Most connections one listener holds; past it a new one gets a 503 and is closed
#: (each listener has its own, so a flood of one cannot starve the others).
MAX_CONNECTIONS = 256


_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: 64\r\n\r\n"
    b'{"error": "too many connections to this listener; retry later"}\n'
)


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 connection, with what it lacks against slow and idle clients:
    a cap on connections (`MAX_CONNECTIONS`) and a deadline for request headers
    (``headers_s``, from the connection's opening, or from the first byte of a request
    on a kept-alive connection)."""

    _headers_timer: asyncio.TimerHandle | None = None
    headers_s = 10.0  # set per listener (`HttpListener`): a third of --client-timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._arm_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self._headers_timer is None and self.conn.our_state is h11.IDLE:
                self._arm_headers()  # the next request on a kept-alive connection began
        else:
            self._disarm_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_headers()
        super().connection_lost(exc)

    def _arm_headers(self) -> None:
        self._headers_timer = self.loop.call_later(self.headers_s, self._headers_late)

    def _disarm_headers(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _headers_late(self) -> None:
        self._headers_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _App:
    """The ASGI app: each request's handler on the listener's thread pool."""

    def __init__(self, handler: type[BaseHandler], pool: ThreadPoolExecutor) -> None:
        self.handler = handler
        self.pool = pool
        self.errors = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        loop = asyncio.get_running_loop()
        exchange = self.handler(scope, receive, loop)
        try:
            await loop.run_in_executor(self.pool, exchange.handle)
        except Exception:  # a bug of ours: answer it, count it, never log per request
            self.errors += 1
            exchange.response = None
        if exchange.response is None:
            exchange.reply_json(500, {"error": "internal error"})
        status, headers, body = exchange.response
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class HttpListener:
    """An HTTP server on its own thread. `start` returns the bound port."""

    def __init__(
        self,
        config: Config,
        address: tuple[str, int],
        handler: type[BaseHandler],
        name: str,
        flag: str,
        **attrs: Any,
    ) -> None:
        self.config = config
        self.address = address
        self.name = name
        self.flag = flag
        self._handler = type(
            handler.__name__,
            (handler,),
            {
                "config": config,
                "listener_host": (f"[{address[0]}]" if ":" in address[0] else address[0]).lower(),
                **attrs,
            },
        )
        self._pool: ThreadPoolExecutor | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def _bind(self) -> socket.socket:
        host, port = self.address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(in_use(host, port, self.flag)) from None
            raise OSError(
                f"cannot listen on {host}:{port} ({self.flag}): {exc.strerror or exc}"
            ) from None
        return sock

    def start(self) -> int:
        sock = self._bind()
        self.port = sock.getsockname()[1]
        self._pool = ThreadPoolExecutor(
            HANDLER_THREADS, thread_name_prefix=f"otel-threads-{self.name}"
        )
        cfg = self.config
        self._server = uvicorn.Server(
            uvicorn.Config(
                _App(self._handler, self._pool),
                http=type("_Protocol", (_Protocol,), {"headers_s": cfg.client_timeout / 3}),
                lifespan="off",
                log_config=None,
                log_level="error",
                access_log=False,
                server_header=False,
                timeout_keep_alive=KEEP_ALIVE_S,
                timeout_graceful_shutdown=5,
                ssl_certfile=cfg.tls_cert,
                ssl_keyfile=cfg.tls_key,
            )
        )
        failed: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._server.serve(sockets=[sock]))
            except BaseException as exc:  # reported by start(), or at stop
                failed.append(exc)
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"otel-threads-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if failed or not self._thread.is_alive():
                raise OSError(
                    f"cannot serve on {self.address[0]}:{self.port} ({self.flag}): "
                    f"{failed[0] if failed else 'the server stopped'}"
                )
            if time.monotonic() > deadline:
                raise OSError(f"{self.flag} did not start within 30s")
            time.sleep(0.01)
        return self.port

    def closing(self) -> None:
        """Stop accepting without waiting: uvicorn winds down in its own thread (~0.15 s
        of its ticks), so listeners told at once wind down together; `stop` waits."""
        if self._server is not None:
            self._server.should_exit = True

    def stop(self) -> None:
        """Stop accepting, let requests under way finish; idempotent, safe before `start`."""
        self.closing()
        self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._pool = None
