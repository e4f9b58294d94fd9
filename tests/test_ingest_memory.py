"""Memory under load is bounded (a real collector process, real decode workers).

The exports under way hold at most --max-ingest-memory (request bytes as they arrive, a
JSON request's parse, decoded rows until committed); past it, exports get 503 with
Retry-After and nothing of them is stored, so exporters retry. A JSON body whose parse
alone would take more than the whole budget is refused (413) before it is parsed.
The tests sample RSS; they time nothing.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from test_collector_process import Running, metrics, post_traces, stored

from collector.metrics import resident_bytes

pytest_plugins = ["test_collector_process"]

#: The README's promise: working set beyond DuckDB's buffer, collector and workers.
CEILING = 512 << 20


def _total_rss(pid: int) -> int:
    """The collector's RSS and its decode workers'."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return resident_bytes(pid) + sum(resident_bytes(int(c)) for c in out.split())


def _ids(k: int, n: int) -> list[tuple[int, int]]:
    return [((k << 32) + j // 8 + 1, (k << 32) + j + 1) for j in range(n)]


def protobuf_request(k: int, n: int) -> bytes:
    spans = [trace_pb2.Span(trace_id=t.to_bytes(16, "big"), span_id=s.to_bytes(8, "big"),
                            name="s", start_time_unix_nano=1, end_time_unix_nano=2)
             for t, s in _ids(k, n)]
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
        trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])
    ]).SerializeToString()


def json_request(k: int, n: int) -> bytes:
    spans = [{"traceId": f"{t:032x}", "spanId": f"{s:016x}", "name": "s",
              "startTimeUnixNano": "1", "endTimeUnixNano": "2"} for t, s in _ids(k, n)]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]},
                      separators=(",", ":")).encode()


def test_concurrent_maximum_requests_stay_under_the_ceiling_and_the_rest_is_refused(
        collectors: Callable[..., Running]) -> None:
    running = collectors(workers="2")
    time.sleep(1.0)  # workers settled
    requests = [(k, 250_000, "application/x-protobuf", protobuf_request(k, 250_000))
                for k in range(1, 7)]
    requests += [(k, 90_000, "application/json", json_request(k, 90_000)) for k in (7, 8)]
    assert all(len(body) < 16 << 20 for *_, body in requests)  # each one is admissible
    part = 'otel_threads_memory_bytes{part="%s"}'

    def working_set() -> float:
        """Collector and workers, beyond DuckDB's buffer, as /metrics reports them."""
        m = metrics(running)
        return m[part % "collector"] + m[part % "decode_workers"] - m[part % "duckdb"]

    base = working_set()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], working_set())
            time.sleep(0.05)

    answers: dict[int, tuple[int, dict[str, str], bytes]] = {}

    def send(k: int, fmt: str, body: bytes) -> None:
        answers[k] = post_traces(running, body, fmt=fmt, timeout=300)

    sampler = threading.Thread(target=sample)
    sampler.start()
    senders = [threading.Thread(target=send, args=(k, fmt, body))
               for k, _, fmt, body in requests]
    try:
        for t in senders:
            t.start()
        for t in senders:
            t.join()
    finally:
        done.set()
        sampler.join()
    statuses = sorted(status for status, _, _ in answers.values())
    assert set(statuses) == {200, 503}, statuses  # some admitted, the excess refused
    for status, headers, _ in answers.values():
        if status == 503:
            assert headers["Retry-After"].isdigit(), headers
    grown = peak[0] - base
    assert grown < CEILING, f"+{grown / (1 << 20):.0f} MiB beyond DuckDB's buffer"
    # what RSS reports agrees: the collector's own figures above are not made up
    assert abs(_total_rss(running.pid) - sum(
        metrics(running)[part % p] for p in ("collector", "decode_workers"))) < 64 << 20

    assert running.stop(timeout=300) == 0
    counts = stored(running.db)
    for k, n, _, _ in requests:
        ids = [f"{s:016x}" for _, s in _ids(k, n)]
        held = sum(counts[i] for i in ids)
        # acknowledged: every span once; refused: none of them (exporters retry it whole)
        assert held == (n if answers[k][0] == 200 else 0), (k, answers[k][0], held)


def test_a_json_body_that_would_parse_past_the_budget_is_refused_before_parsing(
        collectors: Callable[..., Running]) -> None:
    running = collectors("--max-ingest-memory", "8MiB", workers="1")
    hostile = b'{"resourceSpans":[' + b",".join([b"[]"] * 400_000) + b"]}"  # 1.1 MiB
    status, headers, body = post_traces(running, hostile, fmt="application/json")
    assert status == 413, body
    assert b"to parse" in body and b"--max-ingest-memory" in body, body
    assert headers.get("Connection") == "close"
    ordinary = json_request(1, 1_000)  # 0.1 MiB: parsed and stored
    status, _, body = post_traces(running, ordinary, fmt="application/json")
    assert status == 200, body
    assert metrics(running)["otel_threads_written_total{signal=\"spans\"}"] == 1_000
