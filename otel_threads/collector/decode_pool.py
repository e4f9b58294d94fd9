"""Decode worker processes, each reached over its own pipe.

A receiving thread takes an idle worker, sends it the request bytes with
`send_bytes` and reads back the `DecodedBatch` (its table as Arrow IPC bytes,
`DecodedBatch.to_bytes`): one copy each way and no pickling, no feeder or
result-collecting threads in the collector (a ProcessPoolExecutor's own Python
bookkeeping cost the collector process about as much CPU per request as the rest
of the receive path). The same batch type goes on to the writer.

Workers are spawned (never forked from a process running gRPC threads) and exit
when the collector goes away, even after kill -9, or when their pipe closes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal as _signal
import threading
import time
from multiprocessing.connection import Connection

from otel_threads.collector.malloc import tune_malloc
from otel_threads.otlp import decode
from otel_threads.otlp.decode import DecodeError
from otel_threads.otlp.tables import DecodedBatch

__all__ = ["DECODERS", "DecodePool", "WorkerDied", "decode_inline"]

_logger = logging.getLogger(__name__)

_SIGNALS = ("traces", "logs")
_FORMATS = ("protobuf", "json")
#: The first byte of a worker's answer; then a DecodedBatch's bytes (_OK) or a message.
_OK, _DECODE_ERROR, _FAILED = b"\x00", b"\x01", b"\x02"


class WorkerDied(RuntimeError):
    """A decode worker died while decoding a request (the request can be retried)."""


#: The decoder for each (signal, format) a receiver takes.
DECODERS = {
    ("traces", "protobuf"): decode.decode_traces_protobuf,
    ("traces", "json"): decode.decode_traces_json,
    ("logs", "protobuf"): decode.decode_logs_protobuf,
    ("logs", "json"): decode.decode_logs_json,
}


def decode_inline(signal: str, fmt: str, data: bytes) -> DecodedBatch:
    """Decode in this process."""
    return DECODERS[signal, fmt](data)


def _worker_main(conn: Connection, parent_pid: int) -> None:
    """A worker: decode requests from ``conn`` until it closes or the parent is gone.

    Ctrl-C in a terminal signals the whole process group: the collector stops its
    workers itself (closing their pipes), so they ignore SIGINT rather than each
    printing a KeyboardInterrupt traceback."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    tune_malloc()

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        signal, fmt = _SIGNALS[message[0]], _FORMATS[message[1]]
        try:
            batch = DECODERS[signal, fmt](message[2:])
        except decode.DecodeError as exc:
            conn.send_bytes(_DECODE_ERROR + str(exc).encode())
            continue
        except Exception as exc:  # a bug of ours: answer, never die silently
            conn.send_bytes(_FAILED + f"{type(exc).__name__}: {exc}".encode())
            continue
        conn.send_bytes(_OK + batch.to_bytes())


class DecodePool:
    """``size`` worker processes; `decode` borrows an idle one (waiting if none is)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: queue.SimpleQueue[tuple[Connection, multiprocessing.process.BaseProcess]] = (
            queue.SimpleQueue()
        )
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(size):
            self._idle.put(self._spawn())

    def _spawn(self) -> tuple[Connection, multiprocessing.process.BaseProcess]:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main, args=(child, os.getpid()), name="otel-threads-decode", daemon=True
        )
        proc.start()
        child.close()
        with self._lock:
            self._procs.append(proc)
        return parent, proc

    def pids(self) -> list[int]:
        """The process ids of the workers alive now."""
        with self._lock:
            return [p.pid for p in self._procs if p.pid is not None and p.is_alive()]

    def warm(self) -> None:
        """Wait until every worker has imported its code (decode a tiny request each)."""
        borrowed = [self._idle.get() for _ in range(self.size)]
        try:
            for conn, _ in borrowed:
                conn.send_bytes(bytes([0, 0]))  # an empty protobuf request
            for conn, _ in borrowed:
                conn.recv_bytes()
        finally:
            for worker in borrowed:
                self._idle.put(worker)

    def decode(self, signal: str, fmt: str, data: bytes) -> DecodedBatch:
        """Decode in a worker.

        Raises `otel_threads.otlp.decode.DecodeError` for an undecodable request and
        `WorkerDied` if the worker died (a fresh one takes its place).
        """
        conn, proc = self._idle.get()
        try:
            conn.send_bytes(bytes([_SIGNALS.index(signal), _FORMATS.index(fmt)]) + data)
            reply = conn.recv_bytes()
        except (EOFError, OSError):
            conn.close()
            proc.join(1)
            if not self._closed:
                _logger.error(
                    "a decode worker died (exit code %s); starting another", proc.exitcode
                )
                self._idle.put(self._spawn())
            raise WorkerDied("a decode worker died; retry") from None
        self._idle.put((conn, proc))
        status = reply[:1]
        if status == _DECODE_ERROR:
            raise DecodeError(reply[1:].decode())
        if status == _FAILED:
            raise RuntimeError(f"decoding failed: {reply[1:].decode()}")
        return DecodedBatch.from_bytes(memoryview(reply)[1:])

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers (their pipes close; stragglers are terminated). Idempotent."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                conn, _ = self._idle.get_nowait()
            except queue.Empty:
                break
            conn.close()
        deadline = time.monotonic() + timeout
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(1)
