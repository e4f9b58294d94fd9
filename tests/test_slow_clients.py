"""Slow, idle and unauthenticated clients cannot starve the collector (a real process).

Each attack runs while real exports go on, over raw sockets and raw gRPC calls as a
careless or hostile client would send them; the deadlines are the collector's own
(collector.httpbase, collector.grpc_server), and the tests wait for states with
generous deadlines instead of timing anything.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from test_collector_process import (
    NO_PROXY,
    TRACE_EXPORT,
    Running,
    _post_head,
    grpc_call,
    http,
    post_traces,
    span_batches,
)

from otel_threads.collector.grpc_server import STREAMS_PER_CONNECTION
from otel_threads.collector.http_listener import MAX_CONNECTIONS

# the process harness of test_collector_process: `collectors` starts real collectors
pytest_plugins = ["test_collector_process"]

DEADLINE_S = 90.0
#: The collectors here run with --client-timeout CLIENT_TIMEOUT_S: a whole body or gRPC
#: message within it, headers and each pause within a body within a third of it.
CLIENT_TIMEOUT_S = 6.0
SLOW = ("--client-timeout", str(CLIENT_TIMEOUT_S))
BODY_IDLE_S = HEADERS_S = CLIENT_TIMEOUT_S / 3
BODY_WAIT_S = MESSAGE_S = CLIENT_TIMEOUT_S
BODIES = iter(encode_spans(b).SerializeToString() for b in span_batches(300, 3))


def exports_work(running: Running, headers: dict[str, str] | None = None) -> None:
    """One export over OTLP/HTTP and one over gRPC, each acknowledged."""
    status, _, body = post_traces(running, next(BODIES), headers=headers)
    assert status == 200, body
    metadata = [(k.lower(), v) for k, v in (headers or {}).items()]
    grpc_call(running.target(), next(BODIES), metadata=metadata)


def connect(running: Running, listener: str) -> socket.socket:
    host, port = running.target(listener).rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=DEADLINE_S)


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails at DEADLINE_S).
    A reset is a close too (the server closed with bytes of ours unread)."""
    sock.settimeout(DEADLINE_S)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


@pytest.fixture
def many_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip(f"needs 1,400 open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_idle_connections_neither_stop_ingest_nor_stay(
    collectors: Callable[..., Running], many_files: None
) -> None:
    running = collectors(*SLOW)
    idle = [connect(running, "api") for _ in range(1100)]
    try:
        exports_work(running)  # the other listeners: untouched
        # past the cap a new connection is told at once, and closed
        assert b" 503 " in closed_by_server(idle[-1]).split(b"\r\n", 1)[0]
        # the ones it took are closed once they have sent no request for HEADERS_S
        for sock in idle[: MAX_CONNECTIONS - 1]:
            assert closed_by_server(sock) == b""
        status, _, _ = http(f"{running.note['api']}/healthz")
        assert status == 200
        exports_work(running)
    finally:
        for sock in idle:
            sock.close()


def test_announced_but_unsent_bodies_hold_no_budget(collectors: Callable[..., Running]) -> None:
    running = collectors(*SLOW)
    announced = []
    for _ in range(4):  # 4 x 16 MiB is the whole in-flight budget, if charged as announced
        sock = connect(running, "http")
        sock.sendall(_post_head(running, 16 << 20) + b"\x0a")
        announced.append(sock)
    try:
        time.sleep(0.5)
        for _ in range(5):
            exports_work(running)
        for sock in announced:  # cut off once they pause for BODY_IDLE_S
            answer = closed_by_server(sock)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    finally:
        for sock in announced:
            sock.close()


def _dribble(sock: socket.socket, data: bytes, every_s: float, stop: threading.Event) -> None:
    for byte in data:
        if stop.wait(every_s):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def test_dribbled_headers_and_bodies_are_cut_off(collectors: Callable[..., Running]) -> None:
    running = collectors(*SLOW)
    stop = threading.Event()
    head = _post_head(running, 100)
    headers_sock = connect(running, "http")
    body_sock = connect(running, "http")
    body_sock.sendall(head)
    api_sock = connect(running, "api")
    dribblers = [
        threading.Thread(target=_dribble, args=(headers_sock, head, 2.0, stop), daemon=True),
        # never pauses for BODY_IDLE_S, so the whole-body deadline ends it
        threading.Thread(
            target=_dribble, args=(body_sock, b"\x0a" * 100, BODY_IDLE_S / 2, stop), daemon=True
        ),
        threading.Thread(
            target=_dribble,
            args=(api_sock, b"GET /healthz HTTP/1.1\r\n" * 9, 2.0, stop),
            daemon=True,
        ),
    ]
    for thread in dribblers:
        thread.start()
    try:
        exports_work(running)
        assert closed_by_server(headers_sock) == b""  # after HEADERS_S
        assert closed_by_server(api_sock) == b""
        answer = closed_by_server(body_sock)  # after BODY_WAIT_S
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        exports_work(running)
    finally:
        stop.set()
        for sock in (headers_sock, body_sock, api_sock):
            sock.close()
    assert HEADERS_S < BODY_WAIT_S


def _never_sending(stop: threading.Event) -> Iterator[bytes]:
    stop.wait()
    yield from ()


def test_grpc_calls_that_send_no_message_cannot_take_every_slot(
    collectors: Callable[..., Running],
) -> None:
    running = collectors(*SLOW)
    stop = threading.Event()
    # a client of its own (gRPC shares a connection between channels alike)
    channel = grpc.insecure_channel(
        running.target(), (*NO_PROXY, ("grpc.use_local_subchannel_pool", 1))
    )
    stuck = [
        channel.stream_unary(TRACE_EXPORT).future(_never_sending(stop), timeout=120)
        for _ in range(32)
    ]
    try:
        time.sleep(1.0)  # the calls are open on the server
        for _ in range(5):
            exports_work(running)
        # cancelled by the collector after MESSAGE_S: not held for the client's 120 s.
        # A call the client opened before it read the server's SETTINGS may instead be
        # refused (RST_STREAM REFUSED_STREAM, UNAVAILABLE): also not held.
        for call in stuck[:STREAMS_PER_CONNECTION]:
            assert call.exception(timeout=DEADLINE_S) is not None
            assert call.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE), (
                call.details()
            )
    finally:
        stop.set()
        channel.close()
    assert MESSAGE_S < DEADLINE_S


def test_calls_without_the_token_are_refused_before_taking_anything(
    collectors: Callable[..., Running],
) -> None:
    running = collectors("--token", "s3cret", *SLOW)
    stop = threading.Event()
    channels = [
        grpc.insecure_channel(running.target(), (*NO_PROXY, ("grpc.use_local_subchannel_pool", 1)))
        for _ in range(8)
    ]  # 8 clients, 5 calls each: more than the 32 slots
    calls = [
        channel.stream_unary(TRACE_EXPORT).future(_never_sending(stop), timeout=120)
        for channel in channels
        for _ in range(5)
    ]
    try:
        for call in calls:  # answered without waiting for their message
            assert call.exception(timeout=DEADLINE_S) is not None
            assert call.code() == grpc.StatusCode.UNAUTHENTICATED
        exports_work(running, {"Authorization": "Bearer s3cret"})
    finally:
        stop.set()
        for channel in channels:
            channel.close()


def test_a_big_query_stays_within_the_memory_limit_while_exports_go_on(
    collectors: Callable[..., Running],
) -> None:
    """An ORDER BY over 12M rows takes about 800 MiB unbounded; under --memory-limit
    256MiB DuckDB spills to <db>.tmp, and gives the memory back after."""
    running = collectors("--memory-limit", "256MiB")
    base = running.rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], running.rss_bytes())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    answers: list = []
    query = threading.Thread(
        target=lambda: answers.append(
            http(
                f"{running.note['api']}/sql",
                b'{"sql": "SELECT count(*) FROM (SELECT range, md5(range::VARCHAR) m '
                b'FROM range(12000000) ORDER BY m)"}',
                headers={"Content-Type": "application/json"},
                timeout=DEADLINE_S,
            )
        )
    )
    query.start()
    try:
        while query.is_alive():  # ingest is not starved meanwhile
            exports_work(running)
            time.sleep(0.2)
    finally:
        query.join()
        done.set()
        sampler.join()
    status, _, body = answers[0]
    assert status == 200, body
    assert b"12000000" in body
    assert peak[0] - base < 512 << 20, f"+{(peak[0] - base) >> 20} MiB"


def test_at_most_two_sql_statements_run_at_once(collectors: Callable[..., Running]) -> None:
    """A third /sql statement waits for a slot, then gets a 503 saying why; ingest goes
    on meanwhile."""
    running = collectors(*SLOW)
    slow = b'{"sql": "SELECT sum(hash(a::VARCHAR)) FROM range(10000000000) t(a)"}'
    answers: list = []
    queries = [
        threading.Thread(
            target=lambda: answers.append(
                http(
                    f"{running.note['api']}/sql",
                    slow,
                    headers={"Content-Type": "application/json"},
                    timeout=DEADLINE_S,
                )
            )
        )
        for _ in range(2)
    ]
    for query in queries:
        query.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:  # both running: the third is turned away once its wait is over
            status, headers, body = http(
                f"{running.note['api']}/sql",
                b'{"sql": "SELECT 1"}',
                headers={"Content-Type": "application/json"},
                timeout=DEADLINE_S,
            )
            if status == 503:
                break
            assert status == 200 and time.monotonic() < deadline, (status, body)
        assert b"2 /sql statements are running" in body
        assert headers["Retry-After"] == "1"
        exports_work(running)
    finally:
        running.stop()  # stops the two statements too
        for query in queries:
            query.join()
