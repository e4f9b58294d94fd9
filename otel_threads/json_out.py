"""The JSON that otel-threads writes (the CLI's --json, the collector's API, requests
to it) and how its times are read back.

Stored times are naive UTC. In JSON a time always carries its zone, as
``2026-11-20T09:30:00.123456Z`` (`utc_iso`), so no reader takes it for local time;
`parse_utc` reads that (or an offset, or no zone: UTC) back to naive UTC, as the store
hands it over.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import uuid
from typing import Any

__all__ = ["dumps", "jsonable", "parse_utc", "utc_iso"]


def utc_iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: a naive time is taken as UTC (as stored), an aware
    one is converted."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.isoformat() + "Z"


def parse_utc(text: str) -> dt.datetime:
    """An ISO 8601 time as naive UTC: ``Z`` or an offset is converted, no zone is UTC.
    ValueError when it is not one (`datetime.fromisoformat`; ``Z`` also on Python 3.10)."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def jsonable(value: Any) -> Any:
    """What JSON carries for a value it has no type for (``json.dumps(default=...)``):
    a datetime as `utc_iso`, a date or time as ISO, a Decimal as a number, a UUID as
    text, bytes as hex, a timedelta as seconds, a dataclass as its fields."""
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # its fields, one level: the encoder comes back here for each value it has no
        # type for (`dataclasses.asdict` deep-copies every value first: four times the
        # cost of the encoding itself for a thread's page)
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return str(value)


def dumps(payload: Any, indent: int | None = None) -> str:
    """``payload`` as JSON text (UTF-8 kept as is), its values through `jsonable`."""
    return json.dumps(payload, default=jsonable, ensure_ascii=False, indent=indent)
