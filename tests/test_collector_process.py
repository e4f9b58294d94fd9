"""The collector as a real process (`python -m otel_threads.collector`), seen from outside.

Every test starts its own collector on 127.0.0.1 with ports 0, learns the bound
addresses from the ``<db>.collector.json`` note, talks OTLP to it with the SDK's
exporter or raw gRPC/HTTP, and reads the DuckDB file once the process is gone.
The `collectors` fixture kills whatever a test started (and the decode workers
those started), whatever happens.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from certs_helper import self_signed
from click.testing import CliRunner
from google.protobuf import json_format
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_threads import thread
from otel_threads.collector.cli import collect
from otel_threads.collector.config import Config, ConfigError
from otel_threads.collector.ingest import Ingest
from otel_threads.store import StoreLockedError, connect
from otel_threads.store.writer import Writer
from otel_threads.testing import capture

ROOT = Path(__file__).resolve().parents[1]
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
NO_PROXY = (("grpc.enable_http_proxy", 0),)
START_LINE = re.compile(r"otel-threads collector started in ")
STOP_LINE = re.compile(r"otel-threads collector stopped: wrote (\d+) spans ")


# -- the process harness -----------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _alive(pid: int) -> bool:
    """A live (not zombie) decode worker (otel_threads.otlp.worker)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"otel_threads.otlp.worker" in cmdline and "\nState:\tZ" not in status


class CollectorExited(RuntimeError):
    """The collector exited before it was serving."""

    def __init__(self, code: int, log: str) -> None:
        super().__init__(f"collector exited {code}: {log}")
        self.code = code
        self.log = log


@dataclass
class Running:
    """One collector process and what its note says."""

    proc: subprocess.Popen
    db: Path
    log: Path
    note: dict
    children: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def target(self, listener: str = "grpc") -> str:
        """``host:port`` of a listener, from its URL in the note."""
        return self.note[listener].split("://", 1)[1]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout)

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, **(extra or {})}


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """``start(*flags, db=..., env=..., workers=...)`` -> a started `Running`."""
    started: list[Running] = []

    def start(
        *flags: str, db: Path | None = None, env: dict[str, str] | None = None, workers: str = "0"
    ) -> Running:
        db = db or tmp_path / "x.duckdb"
        log = tmp_path / f"collector-{len(started)}.log"
        with log.open("w") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "otel_threads.collector",
                    "--db",
                    str(db),
                    "--grpc",
                    "127.0.0.1:0",
                    "--http",
                    "127.0.0.1:0",
                    "--api",
                    "127.0.0.1:0",
                    "--parse-workers",
                    workers,
                    *flags,
                ],
                cwd=ROOT,
                env=_clean_env(env),
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # its own process group: a test can Ctrl-C it alone
            )
        running = Running(proc, db, log, {})
        started.append(running)
        note_path = Path(f"{db}.collector.json")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CollectorExited(proc.returncode, log.read_text())
            try:
                note = json.loads(note_path.read_text())
            except (OSError, ValueError):
                note = {}
            if note.get("pid") == proc.pid:
                running.note = note
                running.children = _descendants(proc.pid)
                return running
            time.sleep(0.02)
        raise AssertionError(f"collector did not start within 30s: {log.read_text()}")

    try:
        yield start
    finally:
        for running in started:
            if running.proc.poll() is None:
                running.proc.kill()
            running.proc.wait()
            for pid in running.children:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


# -- talking to it ---------------------------------------------------------------------------


def http(
    url: str,
    body: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def post_traces(
    running: Running,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    fmt: str = "application/x-protobuf",
    **kw,
) -> tuple[int, dict[str, str], bytes]:
    return http(
        f"{running.note['http']}/v1/traces",
        body,
        headers={"Content-Type": fmt, **(headers or {})},
        **kw,
    )


def grpc_call(
    target: str,
    body: bytes,
    *,
    method: str = TRACE_EXPORT,
    metadata: Sequence[tuple[str, str]] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    timeout: float = 10.0,
) -> bytes:
    channel = (
        grpc.secure_channel(target, credentials, NO_PROXY)
        if credentials
        else grpc.insecure_channel(target, NO_PROXY)
    )
    with channel:
        return channel.unary_unary(method)(body, metadata=metadata, timeout=timeout)


def _post_head(running: Running, content_length: int) -> bytes:
    return (
        f"POST /v1/traces HTTP/1.1\r\nHost: {running.target('http')}\r\n"
        f"Content-Type: application/x-protobuf\r\nContent-Length: {content_length}"
        "\r\n\r\n"
    ).encode()


def hang_up_after(running: Running, body: bytes, content_length: int) -> None:
    """POST ``body`` on a raw socket, announcing ``content_length`` bytes, and hang up
    without reading the answer, like a client that crashed or timed out."""
    host, port = running.target("http").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(_post_head(running, content_length) + body)


def metrics(running: Running, headers: dict[str, str] | None = None) -> dict[str, float]:
    status, _, body = http(f"{running.note['api']}/metrics", headers=headers)
    assert status == 200, body
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def stored(db: Path) -> Counter[str]:
    """How many times each span id is in the file (read after the collector is gone)."""
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT span_id, count(*) FROM spans GROUP BY trace_id, span_id")
        return Counter(dict(rows.fetchall()))


def span_id(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


def span_batches(n: int, size: int, first_span_id: int = 1) -> list[list[ReadableSpan]]:
    """``n`` batches of ``size`` spans: each a turn (root + steps) of one of 3 threads."""
    out = []
    with capture(first_span_id=first_span_id) as cap:
        for b in range(n):
            with thread(f"thread-{b % 3}"):
                with cap.tracer.start_as_current_span(f"turn-{b}"):
                    for i in range(size - 1):
                        with cap.tracer.start_as_current_span(f"step-{i}"):
                            pass
            out.append(cap.spans())
            cap.exporter.clear()
    return out


def big_request(index: int, n: int = 512) -> bytes:
    """``n`` spans whose trace ids all start with ``index`` as 8 hex digits."""
    base = 1_700_000_000_000_000_000 + index * 1_000_000_000
    spans = [
        trace_pb2.Span(
            trace_id=index.to_bytes(4, "big") + (j // 8 + 1).to_bytes(12, "big"),
            span_id=((index << 16) | (j + 1)).to_bytes(8, "big"),
            name=f"step-{j % 8}",
            start_time_unix_nano=base + j,
            end_time_unix_nano=base + j + 1000,
            attributes=[
                KeyValue(
                    key="gen_ai.conversation.id", value=AnyValue(string_value=f"thread-{index}")
                )
            ],
        )
        for j in range(n)
    ]
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="overload"))]
    )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)]
            )
        ]
    ).SerializeToString()


class Sender(threading.Thread):
    """Exports batches with the SDK's gRPC exporter until told to stop.

    ``acked`` holds the span ids of every acknowledged export, ``results`` says
    of each export whether it was acknowledged, ``busy`` is True during one.
    """

    def __init__(self, target: str, batches: list[list[ReadableSpan]]) -> None:
        super().__init__(daemon=True)
        self.exporter = OTLPSpanExporter(
            endpoint=target, insecure=True, timeout=2, channel_options=NO_PROXY
        )
        self.batches = batches
        self.acked: list[str] = []
        self.results: list[bool] = []
        self.busy = False
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            for batch in self.batches:
                if self.halt.is_set():
                    return
                self.busy = True
                ok = self.exporter.export(batch) is SpanExportResult.SUCCESS
                if ok:
                    self.acked += [span_id(s) for s in batch]
                self.results.append(ok)
                self.busy = False
        finally:
            self.exporter.shutdown()


@dataclass
class Sent:
    acked: list[str]  # span ids of every acknowledged export
    in_flight: list[bool]  # of each export under way when `then` ran: was it acked?
    then: Any  # what `then` returned


def run_senders(
    running: Running,
    batches: list[list[ReadableSpan]],
    *,
    until_acked: int,
    then: Callable[[], Any],
) -> Sent:
    """Two senders share ``batches``; once ``until_acked`` spans are acked, call ``then``
    while they keep exporting, then stop them."""
    senders = [Sender(running.target(), batches[i::2]) for i in range(2)]
    for s in senders:
        s.start()
    try:
        deadline = time.monotonic() + 20
        while sum(len(s.acked) for s in senders) < until_acked:
            assert time.monotonic() < deadline, "exports were not acknowledged"
            assert any(s.is_alive() for s in senders), "senders ran out of batches"
            time.sleep(0.01)
        under_way = [(s, len(s.results)) for s in senders if s.busy]
        result = then()
    finally:
        for s in senders:
            s.halt.set()
    for s in senders:
        s.join(15)
        assert not s.is_alive(), "an export hung"
    return Sent([i for s in senders for i in s.acked], [s.results[n] for s, n in under_way], result)


# -- 1. an acknowledgement survives kill -9 ----------------------------------------------------


def test_acknowledged_spans_survive_kill_9(collectors: Callable[..., Running]) -> None:
    first = collectors(workers="1")
    batches = span_batches(400, 10)

    def kill() -> None:
        os.kill(first.pid, signal.SIGKILL)
        first.proc.wait(10)

    sent = run_senders(first, batches, until_acked=200, then=kill)
    assert first.proc.returncode == -signal.SIGKILL
    assert sent.in_flight, "no export was under way at the kill"
    acked = sent.acked
    assert len(acked) >= 200

    counts = stored(first.db)  # the file opens (read-only) after a crash
    assert {i: counts[i] for i in acked} == dict.fromkeys(acked, 1)
    assert max(counts.values()) == 1

    second = collectors()  # and a new collector takes it over and accepts new data
    new = span_batches(1, 5, first_span_id=1_000_000)[0]
    exporter = OTLPSpanExporter(
        endpoint=second.target(), insecure=True, timeout=10, channel_options=NO_PROXY
    )
    try:
        assert exporter.export(new) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert second.stop() == 0
    counts = stored(second.db)
    assert {i: counts[i] for i in [*acked, *map(span_id, new)]} == dict.fromkeys(
        [*acked, *map(span_id, new)], 1
    )
    assert max(counts.values()) == 1


def test_decode_workers_exit_when_the_collector_is_killed(
    collectors: Callable[..., Running],
) -> None:
    running = collectors(workers="1")
    assert any(_alive(pid) for pid in running.children)
    os.kill(running.pid, signal.SIGKILL)
    running.proc.wait(10)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in running.children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in running.children if _alive(pid)] == []


# -- 2. a clean stop on SIGTERM and SIGINT ------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly_with_everything_acknowledged_on_disk(
    collectors: Callable[..., Running], signum: int
) -> None:
    running = collectors(workers="1")
    batches = span_batches(400, 10)
    big = big_request(7, n=16_384)  # takes a while to decode and commit
    answer: dict[str, object] = {}

    def export_big() -> None:
        try:
            answer["reply"] = grpc_call(running.target(), big, timeout=30)
        except grpc.RpcError as exc:
            answer["reply"] = exc.code()

    def stop() -> int:
        exporting = threading.Thread(target=export_big)
        exporting.start()
        deadline = time.monotonic() + 10
        while metrics(running)["otel_threads_inflight_bytes"] < len(big):
            assert exporting.is_alive(), "the big export was over before the signal"
            assert time.monotonic() < deadline, "the big export never got under way"
        code = running.stop(signum, timeout=60)
        exporting.join(60)
        return code

    sent = run_senders(running, batches, until_acked=200, then=stop)
    code = sent.then
    assert answer == {"reply": b""}, "the export under way at the signal was not acknowledged"
    acked = sent.acked
    assert code == 0
    assert not Path(f"{running.db}.collector.json").exists()

    counts = stored(running.db)
    assert {i: counts[i] for i in acked} == dict.fromkeys(acked, 1)
    big_ids = [f"{(7 << 16) | (j + 1):016x}" for j in range(16_384)]  # see big_request
    assert {i: counts[i] for i in big_ids} == dict.fromkeys(big_ids, 1)
    lines = running.log_lines()
    assert [bool(START_LINE.search(x)) for x in lines] == [True, False, False], lines
    assert "stopping..." in lines[1], lines
    stop_line = STOP_LINE.search(lines[2])
    assert stop_line, lines
    assert int(stop_line.group(1)) == sum(counts.values())


def test_clients_that_hang_up_are_not_logged_one_by_one(collectors: Callable[..., Running]) -> None:
    running = collectors()
    for _ in range(3):
        hang_up_after(running, b"\x0a\x05short", content_length=1000)
    time.sleep(0.3)
    assert running.stop() == 0
    lines = running.log_lines()  # started, stopping, stopped: nothing per client
    assert [bool(START_LINE.search(x)) for x in lines] == [True, False, False], lines
    assert STOP_LINE.search(lines[2]), lines


# -- 3. a redelivered export changes nothing --------------------------------------------------


def _otlp_json(body: bytes) -> bytes:
    """The same request in OTLP/JSON (ids as hex, as the spec says)."""
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    doc = json_format.MessageToDict(request)
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def test_redelivery_is_a_no_op(collectors: Callable[..., Running]) -> None:
    running = collectors()
    first = encode_spans([s for b in span_batches(3, 4) for s in b]).SerializeToString()
    second = encode_spans(
        [s for b in span_batches(3, 4, first_span_id=100) for s in b]
    ).SerializeToString()

    def counters() -> tuple[float, float]:
        m = metrics(running)
        return (
            m['otel_threads_written_total{signal="spans"}'],
            m['otel_threads_duplicates_total{signal="spans"}'],
        )

    seen = []
    for _ in range(3):
        grpc_call(running.target(), first)
        seen.append(counters())
    for _ in range(3):
        assert post_traces(running, first)[0] == 200
        seen.append(counters())
    assert post_traces(running, _otlp_json(first), fmt="application/json")[0] == 200
    seen.append(counters())
    assert seen == [(12, 12 * k) for k in range(7)]

    # redeliveries that arrive together (so land in one group commit) too
    answers: list[object] = []
    threads = [
        threading.Thread(target=lambda: answers.append(grpc_call(running.target(), second) == b""))
        for _ in range(3)
    ]
    threads += [
        threading.Thread(target=lambda: answers.append(post_traces(running, second)[0] == 200))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [True] * 6
    assert counters() == (24, 12 * 6 + 12 * 5)

    assert running.stop() == 0
    with connect(running.db, read_only=True) as con:
        assert con.execute(
            "SELECT count(*), count(DISTINCT span_id) FILTER (WHERE is_turn) FROM spans"
        ).fetchone() == (24, 6)


# -- 4. overload gets retry advice, memory stays bounded -------------------------------------


def test_overload_answers_retry_later_and_stores_nothing_half(
    collectors: Callable[..., Running],
) -> None:
    running = collectors("--max-pending-rows", "600")
    outcomes: dict[int, str] = {}
    peak = [running.rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], running.rss_bytes())

    def over_http(index: int, body: bytes) -> None:
        status, headers, reply = post_traces(running, body, timeout=30)
        if status == 503:
            assert int(headers["Retry-After"]) >= 1
            outcomes[index] = "refused"
        else:
            outcomes[index] = "ok" if status == 200 else f"http {status}: {reply!r}"

    def over_grpc(index: int, body: bytes) -> None:
        try:
            grpc_call(running.target(), body, timeout=30)
            outcomes[index] = "ok"
        except grpc.RpcError as exc:
            retry = dict(exc.trailing_metadata() or ()).get("google.rpc.retryinfo-bin")
            if exc.code() == grpc.StatusCode.UNAVAILABLE and retry:
                delay = RetryInfo.FromString(retry).retry_delay
                assert delay.seconds + delay.nanos / 1e9 > 0
                outcomes[index] = "refused"
            else:
                outcomes[index] = f"grpc {exc.code()}: {exc.details()}"

    def guarded(send: Callable[[int, bytes], None], index: int, body: bytes) -> None:
        try:
            send(index, body)
        except Exception as exc:  # reported below, with the index
            outcomes[index] = repr(exc)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    index, refused = 0, {"http": 0, "grpc": 0}
    for _round in range(5):
        threads = []
        # at most 5 HTTP connections at once: more overflow the listen backlog (see
        # test_a_burst_of_http_exports_is_not_reset)
        for kind, send, n in (("http", over_http, 5), ("grpc", over_grpc, 8)):
            for _ in range(n):
                index += 1
                threads.append(
                    (
                        kind,
                        index,
                        threading.Thread(target=guarded, args=(send, index, big_request(index))),
                    )
                )
        for _, _, t in threads:
            t.start()
        for _, _, t in threads:
            t.join(60)
        for kind, i, _ in threads:
            refused[kind] += outcomes.get(i) == "refused"
        if all(refused.values()):
            break
    done.set()
    sampler.join()

    assert refused["http"] and refused["grpc"], refused
    assert set(outcomes.values()) <= {"ok", "refused"}, outcomes
    assert len(outcomes) == index
    assert peak[0] < 512 << 20, f"RSS peaked at {peak[0] >> 20} MiB"
    assert metrics(running)["otel_threads_overloaded_total"] == sum(refused.values())

    assert running.stop() == 0
    with connect(running.db, read_only=True) as con:
        per_request = dict(
            con.execute(
                "SELECT CAST(('0x' || left(trace_id, 8)) AS INTEGER), count(*) FROM spans "
                "GROUP BY ALL"
            ).fetchall()
        )
    assert {i: per_request.get(i, 0) for i in outcomes} == {
        i: 512 if o == "ok" else 0 for i, o in outcomes.items()
    }


def test_a_burst_of_http_exports_is_not_reset(collectors: Callable[..., Running]) -> None:
    running = collectors()
    body = encode_spans(span_batches(1, 2)[0]).SerializeToString()
    answers: list[object] = []

    def send() -> None:
        try:
            answers.append(post_traces(running, body, timeout=20)[0])
        except OSError as exc:
            answers.append(repr(exc))

    senders = [threading.Thread(target=send) for _ in range(32)]
    os.kill(running.pid, signal.SIGSTOP)  # busy for a moment (e.g. a long commit)
    try:
        for t in senders:
            t.start()
        time.sleep(0.3)
    finally:
        os.kill(running.pid, signal.SIGCONT)
    for t in senders:
        t.join(30)
    assert answers == [200] * 32


def test_memory_stays_bounded_while_large_uploads_arrive(
    collectors: Callable[..., Running],
) -> None:
    running = collectors()
    body = bytes((15 << 20) - 1)
    host, port = running.target("http").rsplit(":", 1)
    peak = running.rss_bytes()

    def send(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # refused before the body was read: allowed
            sock.sendall(body)

    socks: list[socket.socket] = []
    try:
        for _ in range(40):  # one by one: a burst would overflow the listen backlog
            socks.append(socket.create_connection((host, int(port)), timeout=5))
            socks[-1].sendall(_post_head(running, len(body) + 1))
            time.sleep(0.005)
        senders = [threading.Thread(target=send, args=(sock,)) for sock in socks]
        for t in senders:
            t.start()
        for _ in range(100):  # 2 s
            peak = max(peak, running.rss_bytes())
            time.sleep(0.02)
        for t in senders:
            t.join(10)
    finally:
        for sock in socks:
            sock.close()
    assert peak < 512 << 20, f"RSS peaked at {peak >> 20} MiB"


def test_a_request_cut_short_stores_nothing(collectors: Callable[..., Running]) -> None:
    running = collectors()
    parts = [encode_spans([span]) for span in span_batches(1, 2)[0]]  # one span each
    whole = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[p.resource_spans[0] for p in parts]
    ).SerializeToString()
    first_part = parts[0].SerializeToString()
    assert whole.startswith(first_part) and len(whole) > len(first_part)
    hang_up_after(running, first_part, content_length=len(whole))
    time.sleep(0.5)
    assert running.stop() == 0
    assert sum(stored(running.db).values()) == 0


# -- 5. security: loopback by default, bearer token, TLS ---------------------------------------


def test_listeners_bind_loopback_by_default() -> None:
    cfg = Config()
    assert [cfg.grpc, cfg.http, cfg.api] == [
        ("127.0.0.1", 4317),
        ("127.0.0.1", 4318),
        ("127.0.0.1", 4319),
    ]
    loaded = Config.load({}, env={})
    assert [loaded.grpc, loaded.http, loaded.api] == [cfg.grpc, cfg.http, cfg.api]
    # (-h too: `python -m otel_threads.collector -h` runs the command on its own)
    help_text = " ".join(CliRunner().invoke(collect, ["-h"]).output.split())
    for port in (4317, 4318, 4319):
        assert f"default: 127.0.0.1:{port}" in help_text
    assert "0.0.0.0" not in help_text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_token_is_required_on_every_listener(collectors: Callable[..., Running], how: str) -> None:
    running = (
        collectors("--token", "s3cret")
        if how == "flag"
        else collectors(env={"OTEL_THREADS_TOKEN": "s3cret"})
    )
    body = encode_spans(span_batches(1, 2)[0]).SerializeToString()
    good, bad = "Bearer s3cret", "Bearer nope"

    for metadata in (None, [("authorization", bad)], [("authorization", "s3cret")]):
        for method in (TRACE_EXPORT, LOGS_EXPORT):
            with pytest.raises(grpc.RpcError) as caught:
                grpc_call(running.target(), body, method=method, metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    grpc_call(running.target(), body, metadata=[("authorization", good)])

    assert post_traces(running, body)[0] == 401
    assert post_traces(running, body, headers={"Authorization": bad})[0] == 401
    assert post_traces(running, body, headers={"Authorization": good})[0] == 200
    api = running.note["api"]
    assert http(f"{api}/metrics")[0] == 401
    assert http(f"{api}/metrics", headers={"Authorization": bad})[0] == 401
    assert http(f"{api}/healthz")[0] == 200
    m = metrics(running, headers={"Authorization": good})
    assert m['otel_threads_written_total{signal="spans"}'] == 2
    assert m['otel_threads_duplicates_total{signal="spans"}'] == 2


def _tls_collector(
    collectors: Callable[..., Running], tmp_path: Path
) -> tuple[Running, bytes, ssl.SSLContext]:
    cert, key = self_signed(tmp_path)
    running = collectors("--tls-cert", str(cert), "--tls-key", str(key))
    return running, cert.read_bytes(), ssl.create_default_context(cafile=str(cert))


def test_tls_on_every_listener(collectors: Callable[..., Running], tmp_path: Path) -> None:
    running, cert, context = _tls_collector(collectors, tmp_path)
    assert all(running.note[k].startswith("https://127.0.0.1:") for k in ("grpc", "http", "api"))
    batches = span_batches(2, 3)

    exporter = OTLPSpanExporter(
        endpoint=running.note["grpc"],
        timeout=10,
        credentials=grpc.ssl_channel_credentials(root_certificates=cert),
        channel_options=NO_PROXY,
    )
    try:
        assert exporter.export(batches[0]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    body = encode_spans(batches[1]).SerializeToString()
    assert post_traces(running, body, context=context)[0] == 200
    assert http(f"{running.note['api']}/healthz", context=context)[0] == 200

    # plain text is refused on every listener
    with pytest.raises(grpc.RpcError) as caught:
        grpc_call(running.target(), body, timeout=3)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    for listener in ("http", "api"):
        plain = running.note[listener].replace("https://", "http://")
        with pytest.raises((ConnectionError, urllib.error.URLError)):
            http(f"{plain}/v1/traces", body, timeout=3)
    # and so is a client that does not trust the certificate
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        http(f"{running.note['api']}/healthz", context=ssl.create_default_context(), timeout=3)

    assert running.stop() == 0
    assert sum(stored(running.db).values()) == 6


def test_an_idle_connection_does_not_block_tls_listeners(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    running, _, context = _tls_collector(collectors, tmp_path)
    host, port = running.target("api").rsplit(":", 1)
    with socket.create_connection((host, int(port))):
        time.sleep(0.2)
        try:
            status = http(f"{running.note['api']}/healthz", context=context, timeout=2)[0]
        except OSError as exc:
            raise AssertionError(f"an idle connection blocks the listener: {exc!r}") from exc
        assert status == 200
        try:
            code = running.stop(timeout=5)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("an idle connection blocks the stop") from exc
        assert code == 0


# -- 6. bad configuration fails at start-up ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--grpc", "nope"], {}, ["--grpc", "'nope'"]),
        (["--api", "127.0.0.1:70000"], {}, ["--api", "0-65535"]),
        (["--tls-cert", str(ROOT / "pyproject.toml")], {}, ["--tls-cert and --tls-key"]),
        (
            ["--tls-cert", "missing.pem", "--tls-key", "missing.pem"],
            {},
            ["--tls-cert", "no such file"],
        ),
        (["--max-request-bytes", "tiny"], {}, ["--max-request-bytes", "'tiny'"]),
        (["--max-pending-rows", "0"], {}, ["--max-pending-rows", "at least 1"]),
        (["--parse-workers", "-1"], {}, ["--parse-workers"]),
        (["--derive-workers", "0"], {}, ["--derive-workers", "at least 1"]),
        ([], {"OTEL_THREADS_DERIVE_WORKERS": "two"}, ["OTEL_THREADS_DERIVE_WORKERS", "'two'"]),
        (["--grpc", "off", "--http", "off"], {}, ["--grpc", "--http"]),
        (["--grpc", "127.0.0.1:9", "--http", "127.0.0.1:9"], {}, ["different addresses"]),
        (
            [],
            {"OTEL_THREADS_MAX_PENDING_ROWS": "lots"},
            ["OTEL_THREADS_MAX_PENDING_ROWS", "'lots'"],
        ),
        ([], {"OTEL_THREADS_GRPC": "localhost"}, ["OTEL_THREADS_GRPC"]),
    ],
)
def test_bad_configuration_is_a_usage_error(
    args: list[str], env: dict[str, str], names: list[str], tmp_path: Path
) -> None:
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("OTEL_")}
    # a --db that cannot open: should the configuration pass, this fails instead of serving
    unopenable = ["--db", str(tmp_path / "no-such-dir" / "x.duckdb")]
    result = CliRunner().invoke(collect, [*args, *unopenable], env={**clean, **env})
    assert result.exit_code == 2, result.output
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: ")
    for name in names:
        assert name in message


def test_a_flag_wins_over_a_bad_environment_value() -> None:
    env = {"OTEL_THREADS_MAX_REQUEST_BYTES": "1", "OTEL_THREADS_GRPC": "nope"}
    cfg = Config.load({"max_request_bytes": "2MiB", "grpc": "127.0.0.1:0"}, env=env)
    assert (cfg.max_request_bytes, cfg.grpc) == (2 << 20, ("127.0.0.1", 0))


@pytest.mark.parametrize(("raw", "seconds"), [("30", 30.0), ("7.5s", 7.5), (" 2S ", 2.0)])
def test_client_timeout_takes_seconds(raw: str, seconds: float) -> None:
    assert Config.load({"client_timeout": raw}, env={}).client_timeout == seconds


@pytest.mark.parametrize("raw", ["0", "abc", "nan", "-5", "4000", "5m"])
def test_a_bad_client_timeout_is_a_one_line_error(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.load({}, env={"OTEL_THREADS_CLIENT_TIMEOUT": raw})
    assert str(caught.value).startswith("--client-timeout (from OTEL_THREADS_CLIENT_TIMEOUT):")
    assert "\n" not in str(caught.value)


def test_defaults_are_written_once() -> None:
    """Config's defaults are the table's (SETTINGS), and the library's own defaults are
    the ones the table names: the three used to disagree (decode workers: 'auto' in the
    table, 0 in Config)."""
    assert Config() == Config.load({}, env={})
    assert Config().parse_workers == (os.cpu_count() or 1)
    assert Config().derive_workers == max(1, min(4, (os.cpu_count() or 1) // 2))
    assert Config.load({"derive_workers": "3"}, env={}).derive_workers == 3
    ingest = inspect.signature(Ingest).parameters
    writer = inspect.signature(Writer).parameters
    assert Config().max_request_bytes == ingest["max_request_bytes"].default
    assert Config().max_ingest_memory == ingest["max_inflight_bytes"].default
    assert Config().max_pending_rows == writer["max_pending_rows"].default


def test_bad_configuration_stops_the_real_process(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "otel_threads.collector", "--db", str(db), "--grpc", "nope"],
        cwd=ROOT,
        env=_clean_env({"OTEL_THREADS_API": "127.0.0.1:0"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "Usage: python -m otel_threads.collector" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: --grpc: expected HOST:PORT or 'off', got 'nope'"
    )
    assert not db.exists()


def test_a_database_that_cannot_open_is_a_one_line_error(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    db = tmp_path / "no-such-dir" / "x.duckdb"
    with pytest.raises(CollectorExited) as caught:
        collectors(db=db)
    assert caught.value.code == 1
    assert "Traceback" not in caught.value.log, caught.value.log
    message = caught.value.log.strip().splitlines()[-1]
    assert message.startswith("Error: ")
    assert str(db) in message


def test_an_address_in_use_names_the_listener(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(CollectorExited) as caught:
            collectors("--http", address)
    assert caught.value.code == 1
    assert "Traceback" not in caught.value.log
    assert not Path(f"{tmp_path / 'x.duckdb'}.collector.json").exists()
    message = caught.value.log.strip().splitlines()[-1]
    assert "--http" in message
    assert address in message


def test_a_grpc_address_in_use_is_refused(
    collectors: Callable[..., Running], tmp_path: Path
) -> None:
    first = collectors()
    try:
        collectors("--grpc", first.target(), db=tmp_path / "other.duckdb")
    except CollectorExited as exited:
        assert exited.code == 1
        assert first.target() in exited.log
    else:
        raise AssertionError(f"a second collector serves {first.target()} too")


# -- 7. one writer per file ----------------------------------------------------------------


def test_the_file_is_locked_while_a_collector_holds_it(collectors: Callable[..., Running]) -> None:
    running = collectors()
    for read_only in (False, True):
        with pytest.raises(StoreLockedError) as caught:
            connect(running.db, read_only=read_only)
        message = str(caught.value)
        assert f"PID {running.pid}" in message
        assert running.note["api"] in message
    assert running.stop() == 0
    with connect(running.db) as con:  # free again once it stopped
        assert con.execute("SELECT count(*) FROM spans").fetchone() == (0,)
