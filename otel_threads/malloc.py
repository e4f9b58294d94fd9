"""glibc malloc settings under which memory freed after a large request goes back to
the system (where the process does not run on mimalloc: otel_threads.collector.allocator).

By default glibc raises its mmap threshold each time a large block is freed (up to
32 MiB), so the next request's multi-MiB buffers come from the heap, where freed
memory stays mapped; and each thread gets an arena of its own that keeps its high-water
mark. Under concurrent maximum-size requests the collector's RSS grew to twice the
memory it held (bench/memory.py: +744 MiB resident for +250 MiB held). With a fixed
threshold (large blocks are always mmapped, so freeing one unmaps it) and two arenas,
RSS follows what is held (+300 MiB)."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from pathlib import Path

__all__ = ["allocator", "tune_malloc"]

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 << 10
ARENA_MAX = 2


def allocator() -> str:
    """'mimalloc' when this process runs on it (its library is mapped), else 'system'."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "system"
    return "mimalloc" if "libmimalloc" in maps else "system"


def tune_malloc() -> bool:
    """Apply the settings to this process; False where the C library is not glibc or
    the process runs on mimalloc (which glibc's settings would not reach)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if allocator() == "mimalloc":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(_M_ARENA_MAX, ARENA_MAX)
        )
    except (OSError, AttributeError):
        return False
