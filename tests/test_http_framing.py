"""OTLP/HTTP takes any valid HTTP/1.1 framing, with the same caps, and refuses bad framing.

Raw sockets against a real collector: chunked bodies (what the OpenTelemetry JS
exporters send, without Content-Length), chunked and gzip, keep-alive, `Expect:
100-continue`, a request written a few bytes at a time; a chunked body over the cap is
a 413 with nothing stored; two different Content-Lengths, or Content-Length with
chunked, are a 400 and the connection is closed (RFC 9112 6.1, 6.3).
"""

from __future__ import annotations

import gzip
import socket
import time

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from stored_app import App

from otel_threads import thread
from otel_threads.collector import Collector
from otel_threads.collector.testing import running, sql

ANY = ("127.0.0.1", 0)
LIMIT = 64 << 10


@pytest.fixture
def collector(tmp_path):
    with running(tmp_path / "f.duckdb", grpc=None, http=ANY, api=ANY, max_request_bytes=LIMIT) as c:
        yield c


def spans_body(first: int, n: int = 3) -> bytes:
    app = App(first=first)
    with thread(f"t{first}"):
        for i in range(n):
            with app.tracer.start_as_current_span(f"turn-{i}"):
                pass
    return encode_spans(app.spans()).SerializeToString()


def logs_body() -> bytes:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("app")
    for i in range(3):
        logger.emit(body=f"line {i}", attributes={"i": i})
    provider.shutdown()
    return encode_logs(memory.get_finished_logs()).SerializeToString()


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_sockets():
    """Every connection a test opened is closed, also when it fails half way."""
    yield
    while OPEN:
        OPEN.pop().close()


class Conn:
    """One keep-alive connection: write raw requests, read responses."""

    def __init__(self, c: Collector) -> None:
        host, port = c.endpoints.http.split("://")[1].rsplit(":", 1)
        self.host = f"{host}:{port}"
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        OPEN.append(self.sock)
        self.buf = b""

    def head(self, path: str = "/v1/traces", **headers: str) -> bytes:
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}",
            "Content-Type: application/x-protobuf",
            *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, data: bytes, step: int | None = None) -> None:
        if step is None:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), step):
            self.sock.sendall(data[i : i + step])
            time.sleep(0.001)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])
        }
        size = int(headers.get("content-length", 0))
        while len(self.buf) < size:
            self._more()
        body, self.buf = self.buf[:size], self.buf[size:]
        return status, headers, body

    def closed(self) -> bool:
        """Whether the server closes the connection (EOF), whatever else it still sends
        (an error answer's chunked body)."""
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:  # still open after the socket's 30 s
            return False
        return True

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data

    def close(self) -> None:
        self.sock.close()


def test_chunked_exports_of_traces_and_logs_are_stored_whole(collector):
    conn = Conn(collector)
    conn.send(conn.head(Transfer_Encoding="chunked") + chunked(spans_body(1), 7))
    assert conn.response()[0] == 200
    logs = logs_body()
    conn.send(conn.head("/v1/logs", Transfer_Encoding="chunked") + chunked(logs, 50))
    assert conn.response()[0] == 200  # the same connection, kept alive
    gz = gzip.compress(spans_body(100))
    conn.send(conn.head(Transfer_Encoding="chunked", Content_Encoding="gzip") + chunked(gz))
    assert conn.response()[0] == 200
    conn.close()
    assert sql(collector, "SELECT thread_id, count(*) FROM spans GROUP BY ALL ORDER BY ALL") == [
        ("t1", 3),
        ("t100", 3),
    ]
    assert sql(collector, "SELECT body FROM logs ORDER BY body") == [
        ('"line 0"',),
        ('"line 1"',),
        ('"line 2"',),
    ]


def test_keep_alive_expect_continue_and_a_request_in_small_pieces(collector):
    conn = Conn(collector)
    body = spans_body(1)
    for first in (200, 300):  # several exports on one connection
        body = spans_body(first)
        conn.send(conn.head(Content_Length=str(len(body))) + body)
        assert conn.response()[0] == 200
    body = spans_body(400)
    conn.send(conn.head(Content_Length=str(len(body)), Expect="100-continue"))
    status, _, _ = conn.response()
    assert status == 100  # go on
    conn.send(body)
    assert conn.response()[0] == 200
    body = spans_body(500)
    conn.send(conn.head(Content_Length=str(len(body))) + body, step=5)  # a slow writer
    assert conn.response()[0] == 200
    conn.close()
    assert sql(collector, "SELECT count(DISTINCT thread_id), count(*) FROM spans") == [(4, 12)]


def test_a_chunked_body_over_the_cap_is_refused_and_nothing_stored(collector):
    conn = Conn(collector)
    big = spans_body(1, n=2000)
    assert len(big) > LIMIT
    conn.send(conn.head(Transfer_Encoding="chunked") + chunked(big, 4096))
    status, headers, body = conn.response()
    assert status == 413 and headers.get("connection") == "close", body
    conn.close()
    bomb = gzip.compress(bytes(LIMIT * 4))  # small on the wire, over the cap inflated
    conn = Conn(collector)
    conn.send(conn.head(Transfer_Encoding="chunked", Content_Encoding="gzip") + chunked(bomb))
    assert conn.response()[0] == 413
    conn.close()
    assert sql(collector, "SELECT count(*) FROM spans") == [(0,)]


@pytest.mark.parametrize(
    "headers",
    [
        {"Content_Length": "10", "Transfer_Encoding": "chunked"},
        {"Transfer_Encoding": "chunked", "Content_Length": "10"},
    ],
    ids=["length-then-chunked", "chunked-then-length"],
)
def test_content_length_with_chunked_is_refused_and_the_connection_closed(collector, headers):
    conn = Conn(collector)
    body = spans_body(1)
    conn.send(conn.head(**headers) + chunked(body))
    status, _, _ = conn.response()
    assert status == 400
    assert conn.closed()
    conn.close()
    assert sql(collector, "SELECT count(*) FROM spans") == [(0,)]


def test_two_different_content_lengths_are_refused_and_the_connection_closed(collector):
    body = spans_body(1)
    for first, second in ((len(body), len(body) - 1), (len(body) - 1, len(body))):
        conn = Conn(collector)
        head = (
            conn.head(Content_Length=str(first))[:-2] + f"Content-Length: {second}\r\n\r\n".encode()
        )
        conn.send(head + body)
        assert conn.response()[0] == 400
        assert conn.closed()
        conn.close()
    assert sql(collector, "SELECT count(*) FROM spans") == [(0,)]
