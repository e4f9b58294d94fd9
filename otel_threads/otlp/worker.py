"""A decode worker: the process otel_threads.collector.decode_pool starts for each of its
workers (`command`), and what it says over its socket.

It imports what decoding needs and nothing more. Started as multiprocessing's spawn
starts a process, a worker imported the collector's whole main module (DuckDB, gRPC,
the HTTP API) and, where pandas is installed (chDB brings it), pyarrow imported pandas
on the first array it made from Python values: 148 MiB resident idle, against 77 MiB
now (`python bench/memory.py` prints what the workers hold).
"""

from __future__ import annotations

import os
import signal as _signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

__all__ = ["FORMATS", "SIGNALS", "command", "decoders", "main"]

SIGNALS = ("traces", "logs")
FORMATS = ("protobuf", "json")
#: The first byte of a worker's answer; then a DecodedBatch's bytes (OK) or a message.
OK, DECODE_ERROR, FAILED = b"\x00", b"\x01", b"\x02"

#: What the worker's interpreter runs: the parent's module path (so it imports the same
#: otel_threads, whatever the working directory holds), then `main`.
_BOOT = (
    "import sys; sys.path[:] = sys.argv[3:]; from otel_threads.otlp.worker import main; "
    "main(int(sys.argv[1]), int(sys.argv[2]))"
)


def command(fd: int) -> list[str]:
    """The command line of a worker that talks over the socket ``fd`` (passed to it) and
    exits when this process is gone: this interpreter, with its flags (-X, -W, -I...,
    as multiprocessing passes them on)."""
    flags = subprocess._args_from_interpreter_flags()  # (what multiprocessing calls)
    return [sys.executable, *flags, "-c", _BOOT, str(fd), str(os.getpid()), *sys.path]


def decoders() -> dict[tuple[str, str], Callable]:
    """The decoder for each (signal, format) a receiver takes."""
    from otel_threads.otlp import decode

    return {
        ("traces", "protobuf"): decode.decode_traces_protobuf,
        ("traces", "json"): decode.decode_traces_json,
        ("logs", "protobuf"): decode.decode_logs_protobuf,
        ("logs", "json"): decode.decode_logs_json,
    }


class _NoPandas:
    """Makes pandas look absent to the worker: pyarrow checks each Python value it
    converts against pandas' types, importing pandas first where it is installed
    (~35 MiB the worker never uses)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"a decode worker does without {name}", name=name)
        return None


def main(fd: int, parent_pid: int) -> None:
    """Decode the requests that come over the socket ``fd`` until it closes or the
    process ``parent_pid`` is gone (even after kill -9).

    Ctrl-C in a terminal signals the whole process group: the collector stops its
    workers itself (closing their sockets), so they ignore SIGINT rather than each
    printing a KeyboardInterrupt traceback."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    sys.meta_path.insert(0, _NoPandas)
    from otel_threads.malloc import tune_malloc
    from otel_threads.otlp.decode import DecodeError

    tune_malloc()
    decode = decoders()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    conn = Connection(fd)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        signal, fmt = SIGNALS[message[0]], FORMATS[message[1]]
        try:
            batch = decode[signal, fmt](message[2:])
        except DecodeError as exc:
            conn.send_bytes(DECODE_ERROR + str(exc).encode())
            continue
        except Exception as exc:  # a bug of ours: answer, never die silently
            conn.send_bytes(FAILED + f"{type(exc).__name__}: {exc}".encode())
            continue
        conn.send_bytes(OK + batch.to_bytes())
