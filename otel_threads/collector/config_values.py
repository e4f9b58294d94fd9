"""The collector's settings' values: how each setting's text is parsed and checked
(`otel_threads.collector.config` holds the table that names a parser for each).
A bad value is a `ConfigError` whose message says which and why."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from otel_threads.collector.allocator import ALLOCATORS
from otel_threads.prices import PriceEntry, PriceFileError, load_price_file
from otel_threads.store.forks import FORK_POLICIES
from otel_threads.store.retention import parse_duration

__all__ = ["ConfigError", "parse_address"]


class ConfigError(ValueError):
    """A setting has a value that cannot work; the message says which and why."""


def parse_address(value: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (port 0 = any free port), ``[::1]:PORT``, or ``off``."""
    text = value.strip()
    if text.lower() in ("off", "none", "disabled", ""):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"expected HOST:PORT or 'off', got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"port must be a number in {value!r}") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"port must be 0-65535, got {number} in {value!r}")
    return host, number


def _positive_int(value: str) -> int:
    try:
        number = int(str(value).replace("_", ""))
    except ValueError:
        raise ConfigError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise ConfigError(f"must be at least 1, got {number}")
    return number


def _derive_workers(value: str) -> int:
    """'auto': a worker per two CPUs (ingest takes the others), 1 to 4; else at least 1."""
    if str(value).strip().lower() == "auto":
        return max(1, min(4, (os.cpu_count() or 1) // 2))
    return _positive_int(value)


def _memory_limit(value: str) -> int | None:
    """'auto' (None: `DEFAULT_MEMORY_LIMIT`, raised as the store's indexes need), or a SIZE."""
    if str(value).strip().lower() == "auto":
        return None
    return _size(value)


def _workers(value: str) -> int:
    if str(value).strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"expected a number or 'auto', got {value!r}") from None
    if number < 0:
        raise ConfigError(f"must be 0 (decode in the receiving thread) or more, got {number}")
    return number


def _size(value: str) -> int:
    text = str(value).strip().upper().replace("_", "")
    units = {
        "KIB": 1 << 10,
        "MIB": 1 << 20,
        "GIB": 1 << 30,
        "K": 1 << 10,
        "M": 1 << 20,
        "G": 1 << 30,
        "B": 1,
    }
    for unit, factor in units.items():
        if text.endswith(unit):
            text, mult = text[: -len(unit)], factor
            break
    else:
        mult = 1
    try:
        number = int(float(text) * mult)
    except ValueError:
        raise ConfigError(f"expected a size like 16MiB, got {value!r}") from None
    if number < 1024:
        raise ConfigError(f"must be at least 1KiB, got {value!r}")
    return number


def _existing_file(value: str) -> str:
    if not Path(value).is_file():
        raise ConfigError(f"no such file: {value!r}")
    return value


def _on_fork(value: str) -> str:
    value = value.strip().lower()
    if value not in FORK_POLICIES:
        raise ConfigError(f"must be one of {', '.join(FORK_POLICIES)}, got {value!r}")
    return value


def _allocator(value: str) -> str:
    value = value.strip().lower()
    if value not in ALLOCATORS:
        raise ConfigError(f"must be one of {', '.join(ALLOCATORS)}, got {value!r}")
    return value


def _seconds(value: str) -> float:
    text = str(value).strip().lower().removesuffix("s")
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"expected a number of seconds (30, 7.5s), got {value!r}") from None
    if not 1 <= number <= 3600:  # (NaN too)
        raise ConfigError(f"must be 1 to 3600 seconds, got {value!r}")
    return number


def _text(value: str) -> str:
    return value


def _hosts(value: str) -> tuple[str, ...]:
    names = tuple(h.strip().lower() for h in value.split(",") if h.strip())
    for name in names:
        if name != "*" and (
            (":" in name.strip("[]") and not name.startswith("[")) or "/" in name or " " in name
        ):
            raise ConfigError(
                f"expected host names or addresses separated by commas, without ports, got {name!r}"
            )
    return names


def _prices(value: str) -> tuple[PriceEntry, ...]:
    try:
        return tuple(load_price_file(value))
    except PriceFileError as exc:
        raise ConfigError(str(exc)) from None


def _retention(value: str) -> dt.timedelta | None:
    if value.strip().lower() in ("off", "none", "0", ""):
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{exc}, or 'off'") from None
