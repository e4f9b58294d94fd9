"""The JSON otel-threads writes (otel_threads.json_out)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from otel_threads.json_out import dumps


@dataclasses.dataclass
class _Inner:
    at: dt.datetime
    tags: list[str]


@dataclasses.dataclass
class _Outer:
    name: str
    inner: _Inner | None
    items: list[_Inner]
    extra: dict[str, object]


def test_dataclasses_nest_as_objects_with_times_in_utc():
    when = dt.datetime(2026, 12, 6, 8, 30, 0, 123456)
    inner = _Inner(when, ["a", "b"])
    value = _Outer("x", inner, [inner, _Inner(when, [])], {"k": inner, "n": (1, 2)})
    got = json.loads(dumps(value))
    inner_json = {"at": "2026-12-06T08:30:00.123456Z", "tags": ["a", "b"]}
    assert got == {
        "name": "x",
        "inner": inner_json,
        "items": [inner_json, {"at": "2026-12-06T08:30:00.123456Z", "tags": []}],
        "extra": {"k": inner_json, "n": [1, 2]},
    }
    # the fields in their declared order, as `dataclasses.asdict` gives them
    assert list(json.loads(dumps(inner))) == ["at", "tags"]
