"""The collector's memory allocator: mimalloc, preloaded, where it can (else the C
library's malloc, tuned: otel_threads.malloc).

In a process that derives for a while, glibc's malloc gets slower with every refresh:
the same statement bound and planned by DuckDB took 35 ms in a fresh process and 54 ms
after 40 refreshes (a native profile: malloc's share of the samples 15% -> 30%), and
back-to-back refreshes of 1,024 traces went from 0.58 to 0.77 s in 60 refreshes
(docs/storage.md, "Memory allocator"). Under mimalloc, jemalloc or tcmalloc the same
refreshes took 0.46-0.53 s throughout. `exec_with_mimalloc` starts the collector's
process again with mimalloc preloaded (``LD_PRELOAD``), from the ``cmeel-mimalloc``
wheel, a dependency on Linux; `exec_early` does so before the collector's imports.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
from pathlib import Path

from otel_threads.malloc import allocator

__all__ = [
    "ALLOCATORS",
    "ALLOCATOR_ENV",
    "MIMALLOC_OPTIONS",
    "PRELOADED_ENV",
    "AllocatorError",
    "exec_early",
    "exec_with_mimalloc",
    "mimalloc_library",
]

#: --allocator: 'auto' preloads mimalloc where it is installed (Linux), 'mimalloc'
#: insists on it, 'system' keeps the C library's malloc.
ALLOCATORS = ("auto", "mimalloc", "system")
#: Its environment variable (collector.config.SETTINGS names it; `exec_early` reads it
#: before the settings are imported).
ALLOCATOR_ENV = "OTEL_THREADS_ALLOCATOR"
#: Set in the environment of the process started again (and so of its children): it
#: is started again at most once, whether or not the preload took.
PRELOADED_ENV = "OTEL_THREADS_MIMALLOC_PRELOADED"
#: mimalloc's options for the process started again (and its decode workers), unless
#: the environment sets them, so that its memory follows what it holds: without eager
#: commits of its arenas, 40 concurrent 15 MiB uploads peaked at 407-417 MiB resident,
#: as on glibc tuned (392-404), against 505-527; freed memory given back at once (no
#: purge delay), concurrent maximum-size requests grew the working set beyond DuckDB's
#: buffer by 170 and 368 MiB (glibc tuned: 228 and 332) against 456-519 with the delay,
#: over the 512 the README promises (tests/test_collector_process.py,
#: tests/test_ingest_memory.py). The two cost refreshes 0-8% (bench/derive_profile.py).
MIMALLOC_OPTIONS = {"MIMALLOC_ARENA_EAGER_COMMIT": "0", "MIMALLOC_PURGE_DELAY": "0"}


class AllocatorError(RuntimeError):
    """--allocator mimalloc where mimalloc cannot be preloaded."""


def mimalloc_library() -> str | None:
    """The path of ``libmimalloc.so`` from the installed ``cmeel-mimalloc`` wheel, or None
    (not installed, or not Linux)."""
    if sys.platform != "linux":
        return None
    try:
        files = importlib.metadata.distribution("cmeel-mimalloc").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == "libmimalloc.so" and file.parent.name == "lib":
            path = Path(str(file.locate()))
            if path.is_file():
                return str(path)
    return None


def _own_program(argv0: str) -> bool:
    """Whether this process is one of otel-threads' own programs (its console script or
    a module of the package run with -m), which may start itself again; a test runner
    that calls the command in process is not."""
    path = Path(argv0)
    if path.name == "otel-threads":
        return True
    try:
        path.resolve().relative_to(Path(__file__).resolve().parents[1])
    except (ValueError, OSError):
        return False
    return True


def exec_with_mimalloc(choice: str) -> None:
    """Start this process again with mimalloc preloaded, as it was started (same PID,
    arguments, standard streams), when ``choice`` (one of `ALLOCATORS`) asks for it and
    the process is one of otel-threads' own programs not started so already; returns
    otherwise. Raises `AllocatorError` when ``choice`` is 'mimalloc' and it cannot be."""
    running = allocator() == "mimalloc"
    if choice == "system" or running or os.environ.get(PRELOADED_ENV):
        if choice == "mimalloc" and not running:
            raise AllocatorError(
                "--allocator mimalloc: the process was started again with mimalloc "
                "preloaded, and the dynamic loader did not load it"
            )
        return
    library = mimalloc_library()
    if library is None:
        if choice == "mimalloc":
            raise AllocatorError(
                "--allocator mimalloc: mimalloc is not installed (pip install cmeel-mimalloc; "
                "Linux only)"
            )
        return
    if not _own_program(sys.argv[0]):
        return
    preload = os.environ.get("LD_PRELOAD")
    env = dict(os.environ)
    env[PRELOADED_ENV] = "1"
    env["LD_PRELOAD"] = f"{library}:{preload}" if preload else library
    for name, value in MIMALLOC_OPTIONS.items():
        env.setdefault(name, value)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)


def exec_early(argv: list[str]) -> None:
    """`exec_with_mimalloc` before a collector's imports (half a second it would otherwise
    spend twice), for the ``--allocator`` of ``argv`` (a flag wins over
    OTEL_THREADS_ALLOCATOR) when it is a valid one; the command checks its options itself
    afterwards (a wrong value, or mimalloc asked for and missing, is its usage error)."""
    choice = os.environ.get(ALLOCATOR_ENV, "auto")
    for i, arg in enumerate(argv):
        if arg == "--allocator" and i + 1 < len(argv):
            choice = argv[i + 1]
        elif arg.startswith("--allocator="):
            choice = arg.partition("=")[2]
    choice = choice.strip().lower()
    if choice in ALLOCATORS:
        with contextlib.suppress(AllocatorError):
            exec_with_mimalloc(choice)
