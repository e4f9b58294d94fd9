"""The collector's configuration: one declarative table.

Every setting has a flag, an environment variable, a type, a default and a help
text. Precedence is flag > environment > default. A bad value is a clear error
at start-up (`ConfigError`, shown by click as a usage error), never a crash later.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from otel_threads import env
from otel_threads.collector.allocator import ALLOCATOR_ENV
from otel_threads.collector.config_values import (
    ConfigError,
    _allocator,
    _derive_workers,
    _existing_file,
    _hosts,
    _memory_limit,
    _on_fork,
    _positive_int,
    _prices,
    _retention,
    _seconds,
    _size,
    _text,
    _workers,
    parse_address,
)
from otel_threads.collector.ingest import DEFAULT_INFLIGHT_BYTES, MAX_REQUEST_BYTES
from otel_threads.prices import PriceEntry
from otel_threads.store import DB_ENV, DEFAULT_DB
from otel_threads.store.forks import FORK_POLICIES
from otel_threads.store.memory_budget import DEFAULT_MEMORY_LIMIT
from otel_threads.store.writer import MAX_PENDING_ROWS

__all__ = ["API_SETTINGS", "SETTINGS", "Config", "ConfigError", "Setting", "parse_address"]


@dataclass(frozen=True)
class Setting:
    """One row of the table: ``metavar`` is what ``--help`` shows the flag takes."""

    name: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    metavar: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("db", "--db", DB_ENV, _text, DEFAULT_DB, "DuckDB file to write.", "PATH"),
    Setting(
        "grpc",
        "--grpc",
        "OTEL_THREADS_GRPC",
        parse_address,
        "127.0.0.1:4317",
        "OTLP/gRPC listen address (TraceService, LogsService); port 0 picks a free one; "
        "'off' turns it off.",
        "HOST:PORT",
    ),
    Setting(
        "http",
        "--http",
        "OTEL_THREADS_HTTP",
        parse_address,
        "127.0.0.1:4318",
        "OTLP/HTTP listen address (/v1/traces, /v1/logs); port 0 picks a free one; "
        "'off' turns it off.",
        "HOST:PORT",
    ),
    Setting(
        "api",
        "--api",
        "OTEL_THREADS_API",
        parse_address,
        "127.0.0.1:4319",
        "Query API, /healthz, /metrics and the web page; port 0 picks a free one; "
        "'off' turns it off.",
        "HOST:PORT",
    ),
    Setting(
        "token",
        "--token",
        env.TOKEN.name,
        _text,
        None,
        "Require 'Authorization: Bearer TOKEN' on every listener.",
        "TOKEN",
        secret=True,
    ),
    Setting(
        "allowed_hosts",
        "--allowed-hosts",
        "OTEL_THREADS_ALLOWED_HOSTS",
        _hosts,
        "",
        "Host names (comma-separated) the HTTP listeners answer to besides their own "
        "address and loopback names, e.g. a name behind a proxy; '*' for any. Other "
        "Host headers (DNS rebinding) are refused.",
        "HOSTS",
    ),
    Setting(
        "tls_cert",
        "--tls-cert",
        "OTEL_THREADS_TLS_CERT",
        _existing_file,
        None,
        "PEM certificate: serve TLS on every listener (needs --tls-key).",
        "PATH",
    ),
    Setting(
        "tls_key",
        "--tls-key",
        "OTEL_THREADS_TLS_KEY",
        _existing_file,
        None,
        "PEM private key for --tls-cert.",
        "PATH",
    ),
    Setting(
        "parse_workers",
        "--parse-workers",
        "OTEL_THREADS_PARSE_WORKERS",
        _workers,
        "auto",
        "Processes that decode OTLP requests ('auto' = one per CPU; 0 = in the receiving thread).",
        "N|auto",
    ),
    Setting(
        "derive_workers",
        "--derive-workers",
        "OTEL_THREADS_DERIVE_WORKERS",
        _derive_workers,
        "auto",
        "Threads that keep threads, turns and transcripts derived, side by side, each a "
        "share of the threads ('auto' = one per two CPUs, 1 to 4).",
        "N|auto",
    ),
    Setting(
        "client_timeout",
        "--client-timeout",
        "OTEL_THREADS_CLIENT_TIMEOUT",
        _seconds,
        "30s",
        "Longest a client may take to send a whole request (an HTTP body, a gRPC "
        "message); request headers, and each pause within a body, get a third of it. "
        "A slower client is cut off (HTTP 408), so it cannot hold a slot.",
        "SECONDS",
    ),
    Setting(
        "max_request_bytes",
        "--max-request-bytes",
        "OTEL_THREADS_MAX_REQUEST_BYTES",
        _size,
        f"{MAX_REQUEST_BYTES >> 20}MiB",
        "Largest request accepted, after gzip inflation.",
        "SIZE",
    ),
    Setting(
        "max_pending_rows",
        "--max-pending-rows",
        "OTEL_THREADS_MAX_PENDING_ROWS",
        _positive_int,
        str(MAX_PENDING_ROWS),
        "Rows accepted but not yet committed; past this, exports get UNAVAILABLE/503.",
        "N",
    ),
    Setting(
        "max_ingest_memory",
        "--max-ingest-memory",
        "OTEL_THREADS_MAX_INGEST_MEMORY",
        _size,
        f"{DEFAULT_INFLIGHT_BYTES >> 20}MiB",
        "Memory the exports under way may hold: request bytes as they arrive, a JSON "
        "request's parse (about 15x its size) and decoded rows until committed; past "
        "it, exports get UNAVAILABLE/503.",
        "SIZE",
    ),
    Setting(
        "memory_limit",
        "--memory-limit",
        "OTEL_THREADS_MEMORY_LIMIT",
        _memory_limit,
        "auto",
        "DuckDB's memory (its buffer for writes, derivation and queries); past it, "
        "queries and derivation spill to <db>.tmp. The store's indexes must fit in it, "
        f"and grow with the store: 'auto' = {DEFAULT_MEMORY_LIMIT >> 20}MiB, raised as "
        "they need (to at most 3/4 of the machine's or container's memory).",
        "SIZE|auto",
    ),
    Setting(
        "retention",
        "--retention",
        "OTEL_THREADS_RETENTION",
        _retention,
        "off",
        "Delete threads last active longer ago than this (30d, 12h), whole, and reuse "
        "their space; 'off' keeps everything.",
        "AGE|off",
    ),
    Setting(
        "prices",
        "--prices",
        "OTEL_THREADS_PRICES",
        _prices,
        None,
        "A JSON file of model prices that add to or override the genai-prices data "
        '(a list of {"provider", "model" with * wildcards, "input_mtok", "output_mtok", '
        '"cache_read_mtok", "cache_write_mtok"}, USD per million tokens); without it, '
        "the genai-prices data alone.",
        "PATH",
    ),
    Setting(
        "on_fork",
        "--on-fork",
        "OTEL_THREADS_ON_FORK",
        _on_fork,
        "allow",
        "A turn that answers a turn another turn already answers (regenerate, edit): "
        "'allow' stores it as a fork; 'reject' refuses its spans (partial_success).",
        "allow|reject",
    ),
    Setting(
        "allocator",
        "--allocator",
        ALLOCATOR_ENV,
        _allocator,
        "auto",
        "The process's memory allocator: 'auto' = mimalloc where it is installed (Linux: "
        "the collector starts itself again with it preloaded), else the C library's; "
        "'mimalloc' = mimalloc or an error; 'system' = the C library's.",
        "auto|mimalloc|system",
    ),
)


#: The settings of the API listener alone (`otel-threads serve`: no receivers, no file).
API_SETTINGS = ("api", "token", "allowed_hosts", "tls_cert", "tls_key", "client_timeout")


def _default(name: str) -> Any:
    """A setting's default, parsed from the table (the one place it is written)."""
    setting = next(s for s in SETTINGS if s.name == name)
    return None if setting.default is None else setting.parse(setting.default)


@dataclass(frozen=True)
class Config:
    """Validated settings. Build with `Config.load`, or directly in tests; the defaults
    are those of `SETTINGS`."""

    db: str = _default("db")
    grpc: tuple[str, int] | None = _default("grpc")
    http: tuple[str, int] | None = _default("http")
    api: tuple[str, int] | None = _default("api")
    token: str | None = _default("token")
    allowed_hosts: tuple[str, ...] = _default("allowed_hosts")
    tls_cert: str | None = _default("tls_cert")
    tls_key: str | None = _default("tls_key")
    parse_workers: int = _default("parse_workers")
    derive_workers: int = _default("derive_workers")
    client_timeout: float = _default("client_timeout")
    max_request_bytes: int = _default("max_request_bytes")
    max_pending_rows: int = _default("max_pending_rows")
    max_ingest_memory: int = _default("max_ingest_memory")
    memory_limit: int | None = _default("memory_limit")  # None: auto
    on_fork: str = _default("on_fork")
    allocator: str = _default("allocator")
    retention: dt.timedelta | None = _default("retention")  # noqa: RUF009 (immutable)
    #: a price file's entries (None: no file; the genai-prices data alone)
    prices: tuple[PriceEntry, ...] | None = None
    #: False: the API listener alone, with no receivers (`load_api`: otel-threads serve)
    receivers: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Cross-setting checks; raises `ConfigError`."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        if self.token is not None and not self.token.strip():
            raise ConfigError("--token must not be empty")
        if self.on_fork not in FORK_POLICIES:
            raise ConfigError(f"--on-fork must be one of {', '.join(FORK_POLICIES)}")
        if self.receivers and not (self.grpc or self.http):
            raise ConfigError("at least one receiver (--grpc or --http) must be on")
        if not self.receivers and (self.grpc or self.http or not self.api):
            raise ConfigError("--api must be HOST:PORT, not off: the API is all this serves")
        bound = [a for a in (self.grpc, self.http, self.api) if a and a[1] != 0]
        if len(bound) != len(set(bound)):
            raise ConfigError("--grpc, --http and --api must listen on different addresses")

    @classmethod
    def load(
        cls, values: dict[str, str | None] | None = None, env: dict[str, str] | None = None
    ) -> Config:
        """Parse raw strings: ``values`` (flags) > ``env`` > defaults."""
        parsed = _parse(SETTINGS, values, env)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in parsed.items() if k in known})

    @classmethod
    def load_api(
        cls, values: dict[str, str | None] | None = None, env: dict[str, str] | None = None
    ) -> Config:
        """The API listener's settings alone (`API_SETTINGS`), as `load` parses them, for
        the API without receivers (otel-threads serve)."""
        chosen = tuple(s for s in SETTINGS if s.name in API_SETTINGS)
        return cls(grpc=None, http=None, receivers=False, **_parse(chosen, values, env))


def _parse(
    settings: tuple[Setting, ...], values: dict[str, str | None] | None, env: dict[str, str] | None
) -> dict[str, Any]:
    """Each of ``settings`` parsed: ``values`` (flags) > ``env`` > defaults."""
    values = values or {}
    env = dict(os.environ) if env is None else env
    parsed: dict[str, Any] = {}
    for s in settings:
        raw = values.get(s.name)
        source = s.flag
        if raw is None:
            raw, source = env.get(s.env), f"{s.flag} (from {s.env})"
        if raw is None:
            raw, source = s.default, f"{s.flag} (default)"
        if raw is None:
            parsed[s.name] = None
            continue
        if s.secret and not raw.strip():
            raise ConfigError(f"{source}: must not be empty")
        try:
            parsed[s.name] = s.parse(raw)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return parsed
