"""Memory under load is bounded (a real collector process, real decode workers), and
deriving huge LLM calls stays within DuckDB's --memory-limit.

The exports under way hold at most --max-ingest-memory (request bytes as they arrive, a
JSON request's parse, decoded rows until committed); past it, exports get 503 with
Retry-After and nothing of them is stored, so exporters retry. A JSON body whose parse
alone would take more than the whole budget is refused (413) before it is parsed.
The tests sample RSS; they time nothing.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import threading
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from test_collector_process import Running, http, metrics, post_traces, stored

from otel_threads.collector.metrics import CpuParts, resident_bytes
from otel_threads.store import connect
from otel_threads.store.stats import ThreadCpu

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
    spans = [
        trace_pb2.Span(
            trace_id=t.to_bytes(16, "big"),
            span_id=s.to_bytes(8, "big"),
            name="s",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
        )
        for t, s in _ids(k, n)
    ]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    ).SerializeToString()


def json_request(k: int, n: int) -> bytes:
    spans = [
        {
            "traceId": f"{t:032x}",
            "spanId": f"{s:016x}",
            "name": "s",
            "startTimeUnixNano": "1",
            "endTimeUnixNano": "2",
        }
        for t, s in _ids(k, n)
    ]
    return json.dumps(
        {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}, separators=(",", ":")
    ).encode()


def test_concurrent_maximum_requests_stay_under_the_ceiling_and_the_rest_is_refused(
    collectors: Callable[..., Running],
) -> None:
    running = collectors(workers="2")
    time.sleep(1.0)  # workers settled
    requests = [
        (k, 250_000, "application/x-protobuf", protobuf_request(k, 250_000)) for k in range(1, 7)
    ]
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
    senders = [threading.Thread(target=send, args=(k, fmt, body)) for k, _, fmt, body in requests]
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
    assert (
        abs(
            _total_rss(running.pid)
            - sum(metrics(running)[part % p] for p in ("collector", "decode_workers"))
        )
        < 64 << 20
    )

    assert running.stop(timeout=300) == 0
    counts = stored(running.db)
    for k, n, _, _ in requests:
        ids = [f"{s:016x}" for _, s in _ids(k, n)]
        held = sum(counts[i] for i in ids)
        # acknowledged: every span once; refused: none of them (exporters retry it whole)
        assert held == (n if answers[k][0] == 200 else 0), (k, answers[k][0], held)


def test_a_json_body_that_would_parse_past_the_budget_is_refused_before_parsing(
    collectors: Callable[..., Running],
) -> None:
    running = collectors("--max-ingest-memory", "8MiB", workers="1")
    hostile = b'{"resourceSpans":[' + b",".join([b"[]"] * 400_000) + b"]}"  # 1.1 MiB
    status, headers, body = post_traces(running, hostile, fmt="application/json")
    assert status == 413, body
    assert b"to parse" in body and b"--max-ingest-memory" in body, body
    assert headers.get("Connection") == "close"
    ordinary = json_request(1, 1_000)  # 0.1 MiB: parsed and stored
    status, _, body = post_traces(running, ordinary, fmt="application/json")
    assert status == 200, body
    assert metrics(running)['otel_threads_written_total{signal="spans"}'] == 1_000


def _words(seed: int, size: int) -> str:
    """``size`` characters of words, different for every seed."""
    rnd = random.Random(seed)
    words = ["".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(2, 9))) for _ in range(2048)]
    return " ".join(rnd.choices(words, k=size // 4))[:size]


def _kv(key: str, value: str | bool) -> dict:
    return {
        "key": key,
        "value": {"boolValue": value} if isinstance(value, bool) else {"stringValue": value},
    }


def llm_turn_request(i: int, thread_id: str, question: str, answer: str) -> bytes:
    """OTLP/JSON: turn ``i`` of ``thread_id`` (its own trace), a turn span and one LLM
    call (semconv 1.37 message attributes) asked ``question`` that answered ``answer``."""
    trace, turn, call = f"{i + 1:032x}", f"{2 * i + 1:016x}", f"{2 * i + 2:016x}"
    start = 1_790_000_000_000_000_000 + i * 60_000_000_000
    ids = [_kv("gen_ai.conversation.id", thread_id), _kv("otel_threads.turn_id", turn)]
    spans = [
        {
            "traceId": trace,
            "spanId": turn,
            "name": "handle_message",
            "kind": 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 10**9),
            "attributes": [*ids, _kv("otel_threads.is_turn", True)],
        },
        {
            "traceId": trace,
            "spanId": call,
            "parentSpanId": turn,
            "name": "chat gpt-4o",
            "kind": 3,
            "startTimeUnixNano": str(start + 10**6),
            "endTimeUnixNano": str(start + 9 * 10**8),
            "attributes": [
                *ids,
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.request.model", "gpt-4o"),
                _kv(
                    "gen_ai.input.messages",
                    json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                    ),
                ),
                _kv(
                    "gen_ai.output.messages",
                    json.dumps(
                        [
                            {
                                "role": "assistant",
                                "finish_reason": "stop",
                                "parts": [{"type": "text", "content": answer}],
                            }
                        ]
                    ),
                ),
            ],
        },
    ]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def test_a_thread_of_huge_llm_calls_derives_whole_within_a_small_memory_limit(
    collectors: Callable[..., Running],
) -> None:
    """Derivation memory follows the chunk it parses, not the thread: eight calls of 1 MB
    in and 1 MB out derive under --memory-limit 256MiB (parsing the whole thread's 16 MB
    of messages at once needs several times that), the transcript keeps every text whole,
    and the threads list carries previews."""
    running = collectors("--memory-limit", "256MiB")
    texts = []
    for i in range(8):
        question, answer = f"Q{i} " + _words(2 * i, 1 << 20), f"A{i} " + _words(2 * i + 1, 1 << 20)
        texts += [("user", question), ("assistant", answer)]
        status, _, body = post_traces(
            running,
            llm_turn_request(i, "huge", question, answer),
            fmt="application/json",
            timeout=120,
        )
        assert status == 200, body
    deadline = time.monotonic() + 600
    while True:
        m = metrics(running)
        if (
            m['otel_threads_written_total{signal="spans"}'] == 16
            and m["otel_threads_derive_queue_traces"] == 0
        ):
            break
        assert time.monotonic() < deadline, m
        time.sleep(0.5)
    assert m["otel_threads_derive_errors"] == 0
    status, _, body = http(
        f"{running.note['api']}/threads/query",
        json.dumps({}).encode(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert status == 200, body
    [listed] = json.loads(body)["threads"]
    assert listed["thread_id"] == "huge" and listed["turn_count"] == 8
    assert listed["first_input"].startswith("Q0 ") and len(listed["first_input"]) <= 500
    assert running.stop(timeout=300) == 0
    with connect(running.db, read_only=True) as con:
        assert (
            con.execute(
                "SELECT role, content FROM transcript WHERE thread_id = 'huge' ORDER BY seq"
            ).fetchall()
            == texts
        )
        assert con.execute("SELECT count(*) FROM derive_errors").fetchall() == [(0,)]


def test_cpu_seconds_by_part():
    """The writer's and derivation's CPU seconds as given, the rest of the process what
    is left of its own (never less than read before: a counter), and the decode workers'
    from /proc, those that ended included."""
    parts = CpuParts()
    total = sum(os.times()[:2])
    samples = dict(parts.samples(0.0, 0.0, [os.getpid()]))  # (this process as a worker)
    assert samples['{part="writer"}'] == 0.0 and samples['{part="derive"}'] == 0.0
    assert samples['{part="other"}'] >= total > 0
    worker = samples['{part="decode_workers"}']
    assert worker > 0
    # the writer and derivation count what was the rest's: the rest does not go down
    later = dict(parts.samples(total, total, []))
    assert later['{part="other"}'] == samples['{part="other"}']
    # a worker that ended keeps what it used; one never seen is not made up
    assert later['{part="decode_workers"}'] == worker
    assert '{part="decode_workers"}' not in dict(CpuParts().samples(0.0, 0.0, [2**22 + 12345]))


def test_thread_cpu_counts_the_calling_thread():
    """A lap is the CPU its own thread used: what another thread burns meanwhile is not
    in it."""
    waiting = ThreadCpu()  # (this thread: it only waits for the other)
    burned: list[float] = []

    def burn() -> None:
        clock = ThreadCpu()
        for _ in range(2_000):  # (about 40 ms of CPU: what is compared is CPU time)
            sum(range(2_000))
        burned.append(clock.lap())

    thread = threading.Thread(target=burn)
    thread.start()
    thread.join()
    assert burned and burned[0] > 0
    assert waiting.lap() < burned[0]
