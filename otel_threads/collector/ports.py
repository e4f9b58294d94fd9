"""Listen addresses: checked before the collector opens (or creates) its file, one
message for an address in use, whichever listener meets it, and the URL of a listener."""

from __future__ import annotations

import errno
import socket

__all__ = ["check_free", "in_use", "listen_url"]


def listen_url(scheme: str, address: tuple[str, int] | None, port: int | None) -> str | None:
    """The URL a listener on ``address`` (bound to ``port``) is reached at; None when off."""
    if address is None or port is None:
        return None
    host = address[0]
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def in_use(host: str, port: int, flag: str) -> str:
    """The one-line error for an address something else listens on."""
    return (
        f"cannot listen on {_where(host, port)} ({flag}): the address is in use (another "
        f"collector?): stop what listens there, or give {flag} another HOST:PORT "
        "(port 0 picks a free one)"
    )


def check_free(address: tuple[str, int], flag: str) -> None:
    """OSError, one line, when ``address`` cannot be listened on: something listens
    there already, the port needs privileges, or the host is unknown. Other failures
    are left to the listener's own bind; port 0 is always free. A check, not a
    reservation: a listener that binds after another process took the port still
    fails, with its own message."""
    host, port = address
    if port == 0:
        return
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        raise OSError(
            f"cannot listen on {_where(host, port)} ({flag}): unknown host {host!r}"
        ) from None
    for family, kind, proto, _, sockaddr in found:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as listeners do
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(in_use(host, port, flag)) from None
                if exc.errno == errno.EACCES:
                    raise OSError(
                        f"cannot listen on {_where(host, port)} ({flag}): permission denied "
                        "(ports below 1024 need privileges): pick a port from 1024 up"
                    ) from None
