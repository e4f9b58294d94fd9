"""`MemoryBudget`: DuckDB's memory limit, and the indexes that take more of it as the
store grows.

DuckDB keeps an index (an ART) in memory from the first insert into it after a
checkpoint until the next checkpoint, and cannot spill it: past the memory limit a
commit fails and DuckDB invalidates the database. With random keys (trace and span ids,
UUIDs) a few thousand inserts touch nearly every part of an index, so between two
checkpoints such an index takes about its whole size in memory, and that size follows
the rows stored: about 70 bytes per trace for an index by trace id. The tables of rows
per trace are indexed by a number that grows with time instead
(otel_threads.store.trace_numbers), which leaves one index by trace id
(``trace_numbers``'), one by turn id (``turn_keys``'), both kept in generations of which
only the newest takes new keys, and the small ones by thread id (docs/storage.md,
"Index memory"). Under a fixed limit a store that grows may stop committing one day.

So the collector measures what the indexes hold (`Store.sample_index_memory`, after a
commit, at most every `SAMPLE_S`) and, with ``--memory-limit auto`` (the default),
raises the limit before the indexes need it: to `HEADROOM` times what they hold once
they hold over half of it, in steps of `STEP` bytes, never past `cap` (a share of the
machine's memory); the store opens its file again to take the new limit (DuckDB's
configuration is locked while the API serves SQL). A commit or a refresh that runs out
of memory raises it too (by `OOM_GROWTH`; `Store.memory_short`), and the store opens the
file again to take it (to heal, after a fatal error). With a limit
set by hand, nothing is raised: a warning says when the indexes pass half of it, and
`/metrics` shows both (``otel_threads_index_memory_bytes``,
``otel_threads_memory_limit_bytes``).
"""

from __future__ import annotations

import logging
import os
import re
import threading

import duckdb

__all__ = [
    "CGROUP_LIMITS",
    "DEFAULT_MEMORY_LIMIT",
    "HEADROOM",
    "INDEX_MEMORY_SQL",
    "OOM_GROWTH",
    "SAMPLE_S",
    "STEP",
    "MemoryBudget",
    "indexes_crowd",
    "machine_memory",
    "memory_limit_bytes",
    "out_of_memory",
]

_logger = logging.getLogger("otel_threads.store.writer")

#: DuckDB's memory limit with ``--memory-limit auto``, until the indexes need more.
DEFAULT_MEMORY_LIMIT = 512 << 20
#: Seconds between two measures of the indexes' memory (each costs ~0.6 ms).
SAMPLE_S = 1.0
#: Once the indexes hold more than half of the limit, it is raised to this many times
#: what they hold (the rest is room for writes, reads and derivation).
HEADROOM = 2.5
#: After a fatal out-of-memory error, the limit times this (at least).
OOM_GROWTH = 1.5
#: Limits are whole multiples of this.
STEP = 64 << 20
#: Share of the machine's memory (or the container's limit) that an automatic limit
#: never passes.
CAP_SHARE = 0.75
#: What the indexes may hold of the limit before it is raised (or, set by hand, warned of).
_HALF = 0.5


#: Where a container's memory limit is (cgroup v2, then v1): a collector in a container
#: must not raise DuckDB's limit past it, whatever the host has.
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def machine_memory(cgroup_limits: tuple[str, ...] = CGROUP_LIMITS) -> int:
    """Bytes of memory this process may use: the physical memory, or the container's
    limit (``cgroup_limits``) when lower; 0 when unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    for path in cgroup_limits:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:
            total = min(total, int(text)) if total else int(text)
    return total


#: What the store's indexes hold in DuckDB's memory now.
INDEX_MEMORY_SQL = (
    "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'ART_INDEX'"
)
_UNITS = {
    "bytes": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
    "PiB": 1 << 50,
}


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """DuckDB's memory_limit on ``con``, in bytes (it reads as '1.0 GiB'); an unknown
    form reads as no limit."""
    value = str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    match = re.fullmatch(r"\s*([\d.]+)\s*(\w+)\s*", value)
    if not match or match.group(2) not in _UNITS:
        return 1 << 62
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def indexes_crowd(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store's indexes hold over half of DuckDB's memory limit (on ``con``'s
    database): an out-of-memory error then is theirs, not the data's."""
    row = con.execute(INDEX_MEMORY_SQL).fetchone()
    return bool(row) and int(row[0]) > memory_limit_bytes(con) * _HALF


#: How DuckDB's errors say it ran out of memory (a fatal error quotes the first one).
_OUT_OF_MEMORY = ("out of memory", "could not allocate", "failed to pin")


def out_of_memory(detail: str) -> bool:
    """Whether an error's text says DuckDB ran out of memory."""
    text = detail.lower()
    return any(words in text for words in _OUT_OF_MEMORY)


def _round_up(n: float) -> int:
    return int(-(-n // STEP) * STEP)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


class MemoryBudget:
    """DuckDB's memory limit for a store: ``base`` bytes, raised as its indexes need
    (``auto``) or fixed (set by hand); see the module docstring. Thread-safe."""

    def __init__(self, base: int, *, auto: bool = True, cap: int | None = None) -> None:
        self.base = base
        self.auto = auto
        total = machine_memory()
        self.cap = max(base, cap if cap is not None else int(total * CAP_SHARE) or base)
        #: the limit the next connection opened gets
        self.limit = base
        #: what the indexes held when last measured
        self.index_bytes = 0
        self._warned = False
        self._lock = threading.Lock()

    def observe(self, index_bytes: int) -> bool:
        """The indexes hold ``index_bytes`` now; whether the limit was raised (the store
        must open its file again to take it)."""
        with self._lock:
            self.index_bytes = index_bytes
            if index_bytes <= self.limit * _HALF:
                return False
            if not self.auto:
                if not self._warned:
                    self._warned = True
                    _logger.warning(
                        "the store's indexes hold %s of DuckDB's memory limit of %s and grow "
                        "with the store: past the limit commits fail; raise --memory-limit "
                        "(or use auto), or bound the store with --retention",
                        _mib(index_bytes),
                        _mib(self.limit),
                    )
                return False
            return self._raise(_round_up(index_bytes * HEADROOM), index_bytes)

    def out_of_memory(self) -> bool:
        """DuckDB ran out of memory (a commit, a refresh, or a fatal error that stopped
        the database): whether the limit was raised for the next connection."""
        with self._lock:
            if not self.auto:
                return False
            return self._raise(_round_up(self.limit * OOM_GROWTH), self.index_bytes)

    def _raise(self, wanted: int, index_bytes: int) -> bool:
        new = min(max(wanted, self.limit), self.cap)
        if new <= self.limit:
            if not self._warned:
                self._warned = True
                _logger.warning(
                    "the store's indexes hold %s of DuckDB's memory limit of %s, and the "
                    "limit is at its cap (%s of this machine's memory): bound the store "
                    "with --retention",
                    _mib(index_bytes),
                    _mib(self.limit),
                    f"{CAP_SHARE:.0%}",
                )
            return False
        _logger.warning(
            "DuckDB's memory limit raised from %s to %s: the store's indexes hold %s and "
            "grow with the store (set --memory-limit to fix a limit; --retention bounds the "
            "store)",
            _mib(self.limit),
            _mib(new),
            _mib(index_bytes),
        )
        self.limit = new
        return True
