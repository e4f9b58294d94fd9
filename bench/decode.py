"""Benchmark of the OTLP decode step (otel_threads.otlp.decode): spans per second.

Builds pre-encoded ExportTraceServiceRequests of 512 spans each: threads of
turns (a SERVER turn span, an agent span, LLM CLIENT spans and tool spans per
turn; 20% plain request traces without a thread), realistic resource attributes
and 10 attributes per span, honest about repetition:

- realistic: about half the attributes come from small sets or are shared
  (gen_ai.system, model and operation names, http routes, the thread id shared by
  a thread, the turn id shared by the spans of a turn, is_turn) and half are
  unique per span (a 20-character user query, a request id, a response id, token
  counts in 20..16000),
- no repetition: the same shape, but every attribute value is unique (random
  strings and ids: thread and turn ids too), so caches cannot help.

Each round decodes a *fresh* set of requests (new random values), so nothing is
re-decoded: a cache in the decoder would only ever see the repetition that is in
the workload (the no-repetition line shows what it would cost when there is none).
Prints spans/s (the best round) for:

- the bare upb parse of ExportTraceServiceRequest (the floor: no flattening),
- decode_traces_protobuf on the realistic and the no-repetition workloads,
- decode_traces_request (from an already parsed message, as the gRPC servicer does),
- decode_traces_json (the same requests as OTLP/JSON),
- decode_traces_protobuf on LLM-style spans: the realistic spans plus a ~2 KB
  prompt and a ~2 KB completion attribute with quotes and newlines.

Run:  .venv/bin/python bench/decode.py [--requests 40] [--repeat 5] [--profile]
(``OTEL_THREADS_SPEEDUPS=0`` in the environment: without the C accelerator, for comparison)
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import sys
import time

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otel_threads.otlp.attributes import ACCELERATED
from otel_threads.otlp.decode import (
    decode_traces_json,
    decode_traces_protobuf,
    decode_traces_request,
)

SPANS_PER_REQUEST = 512
WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
SYSTEMS = ("openai", "anthropic")
MODELS = ("gpt-4o-2024-08-06", "gpt-4o-mini", "claude-3-5-sonnet", "o3-mini")
ROUTES = ("/v1/chat", "/v1/search", "/healthz")
ALNUM = string.ascii_letters + string.digits


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value
    return kv


def _text(rnd: random.Random, length: int = 20) -> str:
    """Random words: unique in practice (26 words, several per text)."""
    words = []
    while sum(len(w) + 1 for w in words) < length + 8:
        words.append(rnd.choice(WORDS))
    return " ".join(words)[:length]


def _token(rnd: random.Random, length: int) -> str:
    return "".join(rnd.choices(ALNUM, k=length))


def _resource(request: ExportTraceServiceRequest, rnd: random.Random):
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        [
            _kv("service.name", "support-agent"),
            _kv("service.version", "2.14.1"),
            _kv("service.instance.id", f"{rnd.getrandbits(64):016x}"),
            _kv("deployment.environment.name", "production"),
            _kv("host.name", f"ip-10-0-{rnd.randrange(256)}-{rnd.randrange(256)}"),
            _kv("process.pid", rnd.randrange(1, 65536)),
            _kv("process.runtime.name", "cpython"),
            _kv("process.runtime.version", "3.11.7"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.version", "1.45.2"),
        ]
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "openinference.instrumentation.openai"
    scope_spans.scope.version = "0.1.30"
    return scope_spans


def _attributes(rnd, unique: bool, operation: str, thread_id, turn_id, is_root: bool) -> list:
    """10 attributes: 5 shared or from small sets, 5 unique (all unique if ``unique``)."""
    pick = (lambda values: _token(rnd, 12)) if unique else rnd.choice
    shared = [
        _kv("gen_ai.system", pick(SYSTEMS)),
        _kv("gen_ai.request.model", pick(MODELS)),
        _kv("gen_ai.operation.name", _token(rnd, 10) if unique else operation),
    ]
    if thread_id is None:
        shared.append(_kv("http.route", pick(ROUTES)))
        shared.append(_kv("http.response.status_code", _token(rnd, 3) if unique else 200))
    else:
        shared.append(_kv("gen_ai.conversation.id", thread_id))
        shared.append(_kv("otel_threads.turn_id", turn_id))
        if is_root:
            shared[1] = _kv("otel_threads.is_turn", True)
    own = [
        _kv("app.user_query", _text(rnd)),
        _kv("app.request_id", f"{rnd.getrandbits(64):016x}"),
        _kv("gen_ai.response.id", "chatcmpl-" + _token(rnd, 12)),
        _kv("gen_ai.usage.input_tokens", _token(rnd, 6) if unique else rnd.randrange(20, 16000)),
        _kv("gen_ai.usage.output_tokens", _token(rnd, 5) if unique else rnd.randrange(1, 4000)),
    ]
    return shared + own


def build_request(rnd: random.Random, unique: bool = False) -> ExportTraceServiceRequest:
    """One request of SPANS_PER_REQUEST spans: threads of turns of span trees."""
    request = ExportTraceServiceRequest()
    spans = _resource(request, rnd).spans
    clock = 1_760_000_000_000_000_000 + rnd.randrange(10**12)
    while len(spans) < SPANS_PER_REQUEST:
        in_thread = rnd.random() < 0.8  # the rest: plain request traces, no thread
        thread_id = f"thread-{rnd.getrandbits(48):012x}" if in_thread else None
        for _turn in range(rnd.randrange(1, 5)):
            trace_id = rnd.randbytes(16)
            root_id = rnd.randbytes(8)
            shape = [("POST /v1/chat", Span.SPAN_KIND_SERVER, None, "invoke_agent")]
            shape.append(("agent run", Span.SPAN_KIND_INTERNAL, root_id, "invoke_agent"))
            shape += [("chat gpt-4o", Span.SPAN_KIND_CLIENT, root_id, "chat")] * rnd.randrange(1, 4)
            tool = ("tool search_docs", Span.SPAN_KIND_INTERNAL, root_id, "execute_tool")
            shape += [tool] * rnd.randrange(3)
            for index, (name, kind, parent, operation) in enumerate(shape):
                if len(spans) == SPANS_PER_REQUEST:
                    break
                span = spans.add(
                    trace_id=trace_id,
                    span_id=root_id if index == 0 else rnd.randbytes(8),
                    parent_span_id=parent or b"",
                    name=name,
                    kind=kind,
                    start_time_unix_nano=clock,
                    end_time_unix_nano=clock + rnd.randrange(10**6, 3 * 10**9),
                )
                clock += rnd.randrange(10**7)
                span.status.code = Status.STATUS_CODE_ERROR if rnd.random() < 0.02 else 0
                if unique and thread_id is not None:
                    thread, turn = f"thread-{rnd.getrandbits(48):012x}", rnd.randbytes(8).hex()
                else:
                    thread, turn = thread_id, root_id.hex()
                span.attributes.extend(
                    _attributes(rnd, unique, operation, thread, turn, is_root=index == 0)
                )
    return request


def with_llm_payloads(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """A copy whose spans also carry a prompt and a completion of ~2 KB each."""
    prompt = json.dumps(
        [{"role": "user", "content": "Hello,\nplease summarise:\n" + 'some "quoted" text ' * 90}]
    )
    completion = "Sure! Here it is:\n" + "the answer, line by line.\n" * 80
    copy = ExportTraceServiceRequest()
    copy.CopyFrom(request)
    for span in copy.resource_spans[0].scope_spans[0].spans:
        span.attributes.extend([_kv("input.value", prompt), _kv("output.value", completion)])
    return copy


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON of a request: json_format, then ids turned from base64 into hex."""
    data = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(data).encode()


def measure(name: str, function, rounds: list[list], floor: float | None) -> float:
    """Best spans/s over the rounds; each round is a fresh list of inputs."""
    best = float("inf")
    for inputs in rounds:
        started = time.perf_counter()
        for item in inputs:
            function(item)
        best = min(best, time.perf_counter() - started)
    count = len(rounds[0])
    rate = count * SPANS_PER_REQUEST / best
    ratio = f"  ({rate / floor:.2f}x of bare parse)" if floor else ""
    per_request = best / count * 1e3
    print(f"{name:<46} {rate:>10,.0f} spans/s  {per_request:7.2f} ms/request{ratio}")
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is shown")
    parser.add_argument("--profile", action="store_true", help="cProfile decode_traces_protobuf")
    args = parser.parse_args(argv)

    rnd = random.Random(42)
    messages = [[build_request(rnd) for _ in range(args.requests)] for _ in range(args.repeat)]
    encoded = [[m.SerializeToString() for m in ms] for ms in messages]
    unique = [
        [build_request(rnd, unique=True).SerializeToString() for _ in range(args.requests)]
        for _ in range(args.repeat)
    ]
    check = decode_traces_protobuf(encoded[0][0])
    assert check.accepted == SPANS_PER_REQUEST and not check.rejected, check.error
    size = sum(map(len, encoded[0])) / args.requests / 1024
    print(
        f"{args.requests} requests x {SPANS_PER_REQUEST} spans per round, {args.repeat} rounds "
        f"of fresh requests, {size:.0f} KiB protobuf per request, Python {sys.version.split()[0]}"
    )
    state = "on (otel_threads.otlp._speedups, C)" if ACCELERATED else "off (pure Python)"
    print(f"accelerator: {state}")
    floor = measure(
        "bare parse (upb, no flattening)", ExportTraceServiceRequest.FromString, encoded, None
    )
    measure("decode_traces_protobuf (realistic)", decode_traces_protobuf, encoded, floor)
    measure("decode_traces_protobuf (no repetition)", decode_traces_protobuf, unique, floor)
    measure("decode_traces_request (realistic)", decode_traces_request, messages, floor)
    as_json = [[to_otlp_json(m) for m in ms] for ms in messages[:2]]
    measure("decode_traces_json (realistic)", decode_traces_json, as_json, floor)
    llm = [[with_llm_payloads(m).SerializeToString() for m in ms] for ms in messages[:2]]
    per_span = sum(map(len, llm[0])) / len(llm[0]) / SPANS_PER_REQUEST
    print(f"LLM-style spans: {per_span:.0f} bytes/span")
    measure("decode_traces_protobuf (LLM-style)", decode_traces_protobuf, llm, None)

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for data in encoded[-1]:
            decode_traces_protobuf(data)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
