"""Decode worker processes, each reached over its own socket.

A receiving thread takes an idle worker, sends it the request bytes with
`send_bytes` and reads back the `DecodedBatch` (its table as Arrow IPC bytes,
`DecodedBatch.to_bytes`): one copy each way and no pickling, no feeder or
result-collecting threads in the collector (a ProcessPoolExecutor's own Python
bookkeeping cost the collector process about as much CPU per request as the rest
of the receive path). The same batch type goes on to the writer.

Workers are new interpreters (never forked from a process running gRPC threads) that
import what decoding needs alone (otel_threads.otlp.worker), and exit when the
collector goes away, even after kill -9, or when their socket closes.
"""

from __future__ import annotations

import logging
import queue
import socket
import subprocess
import threading
import time
from multiprocessing.connection import Connection

from otel_threads.otlp.decode import DecodeError
from otel_threads.otlp.tables import DecodedBatch
from otel_threads.otlp.worker import DECODE_ERROR, FAILED, FORMATS, SIGNALS, command, decoders

__all__ = ["DECODERS", "DecodePool", "WorkerDied", "decode_inline"]

_logger = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """A decode worker died while decoding a request (the request can be retried)."""


#: The decoder for each (signal, format) a receiver takes.
DECODERS = decoders()


def decode_inline(signal: str, fmt: str, data: bytes) -> DecodedBatch:
    """Decode in this process."""
    return DECODERS[signal, fmt](data)


def _stop(proc: subprocess.Popen, timeout: float) -> None:
    """Wait up to ``timeout`` for ``proc`` to exit, then terminate it."""
    try:
        proc.wait(max(0.0, timeout))
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class DecodePool:
    """``size`` worker processes; `decode` borrows an idle one (waiting if none is)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: queue.SimpleQueue[tuple[Connection, subprocess.Popen]] = queue.SimpleQueue()
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(size):
            self._idle.put(self._spawn())

    def _spawn(self) -> tuple[Connection, subprocess.Popen]:
        ours, theirs = socket.socketpair()
        with theirs:
            proc = subprocess.Popen(
                command(theirs.fileno()), pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
            )
        with self._lock:
            self._procs.append(proc)
        return Connection(ours.detach()), proc

    def pids(self) -> list[int]:
        """The process ids of the workers alive now."""
        with self._lock:
            return [p.pid for p in self._procs if p.poll() is None]

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
            conn.send_bytes(bytes([SIGNALS.index(signal), FORMATS.index(fmt)]) + data)
            reply = conn.recv_bytes()
        except (EOFError, OSError):
            conn.close()
            _stop(proc, 1)
            with self._lock:
                self._procs.remove(proc)
            if not self._closed:
                _logger.error(
                    "a decode worker died (exit code %s); starting another", proc.returncode
                )
                self._idle.put(self._spawn())
            raise WorkerDied("a decode worker died; retry") from None
        self._idle.put((conn, proc))
        status = reply[:1]
        if status == DECODE_ERROR:
            raise DecodeError(reply[1:].decode())
        if status == FAILED:
            raise RuntimeError(f"decoding failed: {reply[1:].decode()}")
        return DecodedBatch.from_bytes(memoryview(reply)[1:])

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers (their sockets close; stragglers are terminated). Idempotent."""
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
            _stop(proc, deadline - time.monotonic())
