"""Decode workers (otel_threads.collector.decode_pool, otel_threads.otlp.worker): they
hold what decoding needs and nothing more, and a worker that dies is replaced (that they
leave with a collector killed -9: tests/test_collector_process.py). The tests poll with
generous deadlines; they time nothing."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from test_decode_split import traces_request

from otel_threads.collector.decode_pool import DecodePool, WorkerDied

#: Libraries a worker must not load (the collector's, not decoding's); pandas where
#: installed (chDB brings it) is what pyarrow would import on its own.
_NOT_IN_A_WORKER = ("duckdb", "grpc", "pandas")


def _mapped(pid: int) -> str:
    """The files mapped into ``pid`` (its shared libraries among them)."""
    return Path(f"/proc/{pid}/maps").read_text()


def _gone(pid: int, deadline_s: float = 60.0) -> bool:
    """Whether ``pid`` exits (or is a zombie) within the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_worker_loads_what_decoding_needs_and_not_the_collector():
    """A worker, having decoded, has loaded pyarrow and protobuf but none of DuckDB,
    gRPC or pandas (started as multiprocessing spawns, it imported the collector's main
    module and all of them), and its answer is the batch decoded in this process."""
    pool = DecodePool(1)
    try:
        pool.warm()
        batch = pool.decode("traces", "protobuf", traces_request(1, 1, 3))
        (pid,) = pool.pids()
        maps = _mapped(pid)
    finally:
        pool.close()
    assert batch.accepted == 3
    assert "pyarrow" in maps  # (the check sees what a worker loads)
    assert "duckdb" in _mapped(os.getpid())  # (and what this process loaded)
    assert [lib for lib in _NOT_IN_A_WORKER if lib in maps] == []


def test_a_worker_that_dies_is_replaced_and_the_next_request_decodes():
    """A worker killed while idle: the request that meets it gets WorkerDied (the caller
    retries), a fresh worker takes its place, and the retry decodes."""
    pool = DecodePool(1)
    try:
        pool.warm()
        (first,) = pool.pids()
        os.kill(first, signal.SIGKILL)
        assert _gone(first)
        with pytest.raises(WorkerDied):
            pool.decode("traces", "protobuf", traces_request(1, 1, 2))
        assert pool.decode("traces", "protobuf", traces_request(1, 1, 2)).accepted == 2
        (second,) = pool.pids()
        assert second != first
    finally:
        pool.close()
    assert _gone(second)
