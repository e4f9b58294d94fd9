"""Thread ids and turn ids: minting (UUIDv7) and validating what `thread()` is given."""

from __future__ import annotations

import os
import re
import threading
import time

__all__ = ["MAX_THREAD_ID_LENGTH", "new_thread_id", "validate_thread_id", "validate_turn_id"]

MAX_THREAD_ID_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


def validate_thread_id(thread_id: object) -> str:
    """Return ``thread_id`` if it is a valid thread id, else raise.

    A thread id is a string of 1-256 characters with no control characters.
    """
    if not isinstance(thread_id, str):
        raise TypeError(f"thread id must be a str, got {type(thread_id).__name__}: {thread_id!r}")
    if not thread_id or len(thread_id) > MAX_THREAD_ID_LENGTH or _CONTROL.search(thread_id):
        shown = thread_id if len(thread_id) <= 60 else thread_id[:57] + "..."
        raise ValueError(
            f"thread id must be 1-{MAX_THREAD_ID_LENGTH} printable characters, "
            f"got {shown!r} ({len(thread_id)} characters)"
        )
    return thread_id


def validate_turn_id(turn_id: object) -> str:
    """Normalise a turn id (a span id) to 16 lowercase hex characters, or raise."""
    if isinstance(turn_id, bool):
        raise TypeError(f"previous_turn_id must be a 16-hex-digit str or an int, got {turn_id!r}")
    if isinstance(turn_id, int):
        if not 0 < turn_id < 2**64:
            raise ValueError(f"previous_turn_id must be a non-zero 64-bit span id, got {turn_id}")
        return format(turn_id, "016x")
    if not isinstance(turn_id, str):
        raise TypeError(
            "previous_turn_id must be a 16-hex-digit str or an int, "
            f"got {type(turn_id).__name__}: {turn_id!r}"
        )
    low = turn_id.lower()
    if not _SPAN_ID.fullmatch(low) or low == "0" * 16:
        raise ValueError(
            f"previous_turn_id must be a span id of 16 hex digits (not all zero), got {turn_id!r}"
        )
    return low


_uuid_lock = threading.Lock()
_uuid_last = [0, 0]  # last millisecond, counter within it


def new_thread_id() -> str:
    """A new UUIDv7 string (RFC 9562): 36 characters, ordered by creation time.

    Ids minted in the same millisecond by this process stay ordered: the 12-bit
    ``rand_a`` field counts up from a random start (RFC 9562 section 6.2, method 1).
    """
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        last_ms, counter = _uuid_last
        if ms <= last_ms:
            ms, counter = last_ms, counter + 1
            if counter > 0xFFF:
                ms, counter = ms + 1, int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
        _uuid_last[0], _uuid_last[1] = ms, counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    h = format(value, "032x")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
