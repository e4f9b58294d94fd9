"""Python values as OTLP AnyValues, for tests that build requests by hand."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def set_value(target: AnyValue, value: object) -> None:
    """Python -> AnyValue: str, bool, int, float, bytes, list, ("kv", [(k, v)]), None."""
    if value is None:
        return
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for item in value:
            set_value(target.array_value.values.add(), item)
    else:
        target.kvlist_value.SetInParent()
        for key, item in value[1]:
            set_value(target.kvlist_value.values.add(key=key).value, item)
