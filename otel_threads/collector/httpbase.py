"""What the two HTTP listeners' handlers (OTLP/HTTP and the API) share: the body,
the token, the Host and Origin checks, replies. The server itself is
otel_threads.collector.http_listener.

Each listener is a uvicorn server (HTTP/1.1 parsed by h11) on its own thread and event
loop. The loop takes connections, parses requests and moves bodies, so any valid
HTTP/1.1 framing works: Content-Length or chunked bodies (as the OpenTelemetry JS
exporters send), keep-alive, ``Expect: 100-continue``; malformed framing (two different
Content-Lengths, Content-Length with chunked) is refused by h11 with 400 and the
connection closed. Handlers are plain blocking methods (an export waits for its
commit, a read for DuckDB): each request runs its handler on a thread of the
listener's pool, over a `BaseHandler` that reads the body from the loop as the handler
asks for it (so a handler can refuse a body before it is read) and keeps the reply
until the handler returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Callable
from email.message import Message
from typing import Any

from otel_threads.collector.config import Config

__all__ = ["BaseHandler"]


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class _TooSlow(_Disconnected):
    pass


class BaseHandler:
    """One request, as a handler method sees it: ``command``, ``path`` (with the query
    string), ``headers``; `read_body`, `discard_body` and `reply` (which every handler
    calls exactly once, or the request gets a 500)."""

    config: Config  # set on the subclass made by `HttpListener`
    #: paths answered without a token (health checks from load balancers)
    open_paths: frozenset[str] = frozenset()

    def __init__(self, scope: dict, receive: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.command: str = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        self.path = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        self.headers = Message()
        for name, value in scope["headers"]:
            self.headers[name.decode("latin-1")] = value.decode("latin-1")
        self._receive = receive
        self._loop = loop
        self._more_body = True
        self.response: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None

    # -- the body ---------------------------------------------------------------------

    async def _read(
        self, limit: int, keep: bool = True, charge: Callable[[int], None] | None = None
    ) -> bytes:
        """The rest of the body (dropped as it comes unless ``keep``); `_BodyTooLarge`
        past ``limit`` bytes (read no further), `_TooSlow` after a pause of a third of
        --client-timeout.
        ``charge(n)`` is called as each piece of n bytes arrives (it may raise to stop)."""
        chunks, size = [], 0
        while self._more_body:
            try:
                message = await asyncio.wait_for(self._receive(), self.config.client_timeout / 3)
            except TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            self._more_body = message.get("more_body", False)
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            if charge is not None and chunk:
                charge(len(chunk))
            if keep:
                chunks.append(chunk)
        return b"".join(chunks)

    def _await(
        self, limit: int, keep: bool = True, charge: Callable[[int], None] | None = None
    ) -> bytes:
        future = asyncio.run_coroutine_threadsafe(self._read(limit, keep, charge), self._loop)
        try:
            return future.result(self.config.client_timeout)
        except TimeoutError:
            future.cancel()  # stop reading: the connection is closed after the reply
            raise

    def read_body(self, limit: int, charge: Callable[[int], None] | None = None) -> bytes | None:
        """The request body, or None after replying 413 (over ``limit`` bytes: a declared
        length is refused before reading, a chunked body once it passes the limit), 408
        (the body paused too long, or took over --client-timeout) or 400 (the client
        went away mid-body): nothing of it is kept. ``charge`` as in `_read`: what it
        raises is raised here."""
        declared = self.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            self.discard_body(int(declared))
            self._too_large(int(declared), limit)
            return None
        try:
            return self._await(limit, charge=charge)
        except _BodyTooLarge:
            self._too_large(None, limit)
        except (_TooSlow, TimeoutError):
            self.reply(
                408,
                b'{"error": "the request body came too slowly"}',
                "application/json",
                close=True,
            )
        except _Disconnected:
            self.reply(
                400, b'{"error": "the request body ended early"}', "application/json", close=True
            )
        return None

    def _too_large(self, size: int | None, limit: int) -> None:
        said = f"is {size} bytes" if size is not None else "goes"
        self.reply(
            413,
            json.dumps({"error": f"request body {said} over the limit of {limit}"}).encode(),
            "application/json",
            close=True,
        )

    @property
    def body_pending(self) -> bool:
        """Whether some of the body is still unread."""
        return self._more_body

    def discard_body(self, size: int, cap: int = 32 << 20) -> None:
        """Read and drop up to ``cap`` bytes of a body we refuse, so the client gets to
        read our answer instead of a broken pipe."""
        with contextlib.suppress(_BodyTooLarge, _Disconnected, TimeoutError):
            self._await(min(size, cap), keep=False)

    # -- who is asking -----------------------------------------------------------------

    #: the listener's own host (set by `HttpListener`): answered besides loopback names
    listener_host = "127.0.0.1"
    _LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

    def refused_by_origin(self) -> str | None:
        """Why a web page must not get this request through, or None.

        127.0.0.1 is no boundary for a browser: a page on any site can send requests to
        it (cross-site, "no-cors"), and a DNS-rebinding page can make its own name
        resolve to 127.0.0.1 and read the answers. So a request is refused when its
        Host is not the listener's address, a loopback name or one of
        ``--allowed-hosts``; when its Origin is another origin than the one it was sent
        to; or when the browser says (Sec-Fetch-Site) it comes from another site or
        origin. Clients that are not browsers send neither header.
        """
        host = self.headers.get("Host")
        if host is not None:
            name = _host_name(host)
            allowed = self.config.allowed_hosts or ()
            if (
                name not in self._LOOPBACK
                and name != self.listener_host.lower()
                and name not in allowed
                and "*" not in allowed
            ):
                return (
                    f"Host {host!r} is not this collector's address: add it with "
                    "--allowed-hosts to serve it under that name"
                )
        origin = self.headers.get("Origin")
        if origin is not None and host is not None:
            own = {f"http://{host}".lower(), f"https://{host}".lower()}
            if origin.lower() not in own:
                return f"requests from the web page at {origin} are refused"
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() not in ("same-origin", "none"):
            return f"requests from another web page ({site}) are refused"
        return None

    # -- the reply ----------------------------------------------------------------------

    def authorized(self) -> bool:
        """Check the bearer token (if one is configured); reply 401 when it fails."""
        token = self.config.token
        if not token or self.path.split("?", 1)[0] in self.open_paths:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
        self.reply(
            401,
            b'{"error": "missing or wrong bearer token"}',
            "application/json",
            {"WWW-Authenticate": "Bearer"},
        )
        return False

    def reply(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        out = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        out += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        if close:
            out.append((b"connection", b"close"))
        self.response = (status, out, b"" if self.command == "HEAD" else body)

    def reply_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, close: bool = False
    ) -> None:
        body = json.dumps(payload, default=str, ensure_ascii=False).encode()
        self.reply(status, body, "application/json", headers, close)

    def handle(self) -> None:
        """Run ``do_<METHOD>``; a method the handler lacks is a 501. Refused first:
        a request framed both by Content-Length and chunked (RFC 9112 6.1: the two could
        disagree on where the next request starts; the connection is closed), and any
        request a web page could have made (`refused_by_origin`)."""
        if "Transfer-Encoding" in self.headers and "Content-Length" in self.headers:
            self.reply_json(
                400, {"error": "send Content-Length or Transfer-Encoding, not both"}, close=True
            )
            return
        refusal = self.refused_by_origin()
        if refusal is not None:
            self.reply_json(403, {"error": refusal})
            return
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            self.reply_json(501, {"error": f"{self.command} is not supported"})
            return
        method()


def _host_name(host: str) -> str:
    """The name of a Host header, without its port ('[::1]:4319' -> '[::1]')."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
