"""Splitting a large OTLP protobuf request into smaller ones, at the wire level.

Decoding holds intermediate objects many times the size of the request (about 20x for
a request of many small spans), so a large request is decoded in pieces of about
`PIECE_BYTES` each: same resources and scopes, a share of the spans (or log records)
each. Nothing is parsed beyond the three levels of nesting that carry the items:
``Export*ServiceRequest.resource_* (1) -> Resource*.scope_* (2) -> Scope*.items (2)``,
the same field numbers for traces and logs.
"""

from __future__ import annotations

from collections.abc import Iterator

from otel_threads.otlp.values import DecodeError

__all__ = ["PIECE_BYTES", "split_request"]

#: About how many bytes of a request one piece holds (an item larger than that is a
#: piece of its own).
PIECE_BYTES = 256 << 10

#: The repeated field holding the children at each level, from the request down.
_LEVELS = (1, 2, 2)


def _varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise DecodeError("malformed protobuf: a varint runs past its message")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(data: memoryview, child: int) -> Iterator[tuple[int, int, int]]:
    """Each field of the message: (where its tag starts, where its value starts, where
    it ends), the value start -1 for a field other than a length-delimited ``child``."""
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        value = -1
        if wire == 0:
            _, pos = _varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if number == child:
                value = pos
            pos += length
        else:
            raise DecodeError(f"malformed protobuf: wire type {wire}")
        if pos > end:
            raise DecodeError("malformed protobuf: a field runs past its message")
        yield start, value, pos


def _split(data: memoryview, levels: tuple[int, ...], limit: int) -> Iterator[bytes]:
    """``data`` as messages of about ``limit`` bytes: its other fields in each, its
    children (field ``levels[0]``) shared out, a child too large split the same way.

    Two passes over the fields, holding no object per child: the first gathers the
    other fields (they may come after the children), the second shares out the
    children, as runs of the request's own bytes where they are contiguous."""
    head = b"".join(
        bytes(data[start:stop]) for start, value, stop in _fields(data, levels[0]) if value < 0
    )
    tag = _encode_varint(levels[0] << 3 | 2)
    parts: list[bytes | memoryview] = []
    size = len(head)
    run_start = run_stop = 0  # children next to each other, not yet in parts
    children = 0

    def flush_run() -> None:
        if run_stop > run_start:
            parts.append(data[run_start:run_stop])

    for start, value, stop in _fields(data, levels[0]):
        if value < 0:
            continue
        children += 1
        if stop - start <= limit or len(levels) == 1:
            if size > len(head) and size + stop - start > limit:
                flush_run()
                yield head + b"".join(parts)
                parts, size, run_start, run_stop = [], len(head), start, start
            if start != run_stop:
                flush_run()
                run_start = start
            run_stop = stop
            size += stop - start
            continue
        for piece in _split(data[value:stop], levels[1:], limit):
            encoded = tag + _encode_varint(len(piece)) + piece
            flush_run()
            run_start = run_stop = 0
            if size > len(head) and size + len(encoded) > limit:
                yield head + b"".join(parts)
                parts, size = [], len(head)
            parts.append(encoded)
            size += len(encoded)
    flush_run()
    if size > len(head) or not children:
        yield head + b"".join(parts)


def split_request(data: bytes, limit: int = PIECE_BYTES) -> Iterator[bytes]:
    """The Export*ServiceRequest ``data`` as requests of about ``limit`` bytes each, which
    together hold every item once, each with its own resource and scope. A request
    within ``limit`` is itself. Raises `DecodeError` for malformed framing."""
    if len(data) <= limit:
        yield data
        return
    yield from _split(memoryview(data), _LEVELS, limit)
