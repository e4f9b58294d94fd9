"""Stopping the collector process as people do: SIGTERM while queries run, Ctrl-C in a
terminal (SIGINT to the whole process group), and Ctrl-C twice.

Each stop says "stopping..." at once, ends without a traceback from any process, removes
the holder note, and keeps everything acknowledged. Deadlines are generous: the tests
wait for states, they do not time the stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from test_collector_process import Running, _post_head, http, span_batches, span_id, stored


def send_acked(running: Running, batches: int = 4) -> list[str]:
    """Export some spans and return the ids of those acknowledged (all of them)."""
    exporter = OTLPSpanExporter(endpoint=running.note["grpc"], insecure=True)
    acked = []
    for batch in span_batches(batches * 10, 10):
        assert exporter.export(batch).name == "SUCCESS"
        acked += [span_id(s) for s in batch]
    exporter.shutdown()
    return acked


# the process harness of test_collector_process: `collectors` starts real collectors
pytest_plugins = ["test_collector_process"]


def wait_exit(running: Running, timeout: float = 60.0) -> int:
    try:
        return running.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running {timeout}s after the signal: {running.log.read_text()}"
        ) from None


def slow_sql(running: Running, answers: list) -> threading.Thread:
    """A /sql statement that runs for minutes unless stopped; its answer goes in answers."""
    query = b'{"sql": "SELECT sum(hash(a::VARCHAR)) FROM range(10000000000) t(a)"}'

    def run() -> None:
        try:
            answers.append(
                http(
                    f"{running.note['api']}/sql",
                    query,
                    headers={"Content-Type": "application/json"},
                    timeout=120,
                )[0]
            )
        except OSError as exc:  # the listener closed the connection: also an end
            answers.append(type(exc).__name__)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def assert_clean_stop(running: Running, code: int) -> list[str]:
    log = running.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log and "busy" not in log, log
    assert not Path(f"{running.db}.collector.json").exists()
    lines = log.splitlines()
    assert "stopping..." in lines[1] and "stopped" in lines[-1], lines
    return lines


def test_sigterm_while_sql_queries_run_stops_cleanly(collectors: Callable[..., Running]) -> None:
    running = collectors()
    acked = send_acked(running)
    answers: list = []
    queries = [slow_sql(running, answers) for _ in range(2)]
    time.sleep(1)  # the queries are under way (they run for minutes otherwise)
    running.proc.send_signal(signal.SIGTERM)
    assert_clean_stop(running, wait_exit(running))
    for q in queries:
        q.join(60)
    assert answers == [503, 503], answers  # stopped, and said so
    counts = stored(running.db)
    assert {i: counts[i] for i in acked} == dict.fromkeys(acked, 1)


def test_ctrl_c_in_a_terminal_stops_every_process_quietly(
    collectors: Callable[..., Running],
) -> None:
    running = collectors(workers="2")  # decode workers get the terminal's SIGINT too
    acked = send_acked(running)
    os.killpg(running.pid, signal.SIGINT)
    assert_clean_stop(running, wait_exit(running))
    counts = stored(running.db)
    assert {i: counts[i] for i in acked} == dict.fromkeys(acked, 1)


def test_a_second_ctrl_c_stops_at_once_keeping_what_was_acknowledged(
    collectors: Callable[..., Running],
) -> None:
    running = collectors()
    acked = send_acked(running)
    # an upload that announces more than it sends: a clean stop waits for it (up to
    # its grace period); the second Ctrl-C does not
    host, port = running.target("http").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as upload:
        upload.sendall(_post_head(running, 1 << 20) + b"\x0a")
        time.sleep(0.5)
        os.killpg(running.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while "stopping..." not in running.log.read_text():
            assert time.monotonic() < deadline, running.log.read_text()
            time.sleep(0.05)
        os.killpg(running.pid, signal.SIGINT)
        code = wait_exit(running)
    log = running.log.read_text()
    assert code == 128 + signal.SIGINT, log
    assert "stopping now" in log and "Traceback" not in log, log
    assert not Path(f"{running.db}.collector.json").exists()
    counts = stored(running.db)
    assert {i: counts[i] for i in acked} == dict.fromkeys(acked, 1)
