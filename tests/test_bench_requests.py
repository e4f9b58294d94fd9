"""The soak's synthetic requests (bench/conversations.py, encoded by hand for speed)
decode, with opentelemetry-proto, to the conversations its docstring describes."""

from __future__ import annotations

import json
import os
import sys

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
try:
    import conversations as bench
finally:
    sys.path.pop(0)


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind)


def _attrs(span) -> dict:
    return {kv.key: _value(kv.value) for kv in span.attributes}


def test_requests_decode_to_the_conversations():
    conversations = bench.Conversations(11)
    seen_traces, seen_spans, turn_numbers = set(), set(), {}
    requests = 40  # enough for conversations of 10 turns to end and be replaced
    for _ in range(requests):
        spans_bytes, convs = conversations.next_turns()
        request = ExportTraceServiceRequest.FromString(bench.request(spans_bytes))
        (resource_spans,) = request.resource_spans
        assert {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes} == {
            "service.name": "soak"
        }
        (scope_spans,) = resource_spans.scope_spans
        assert scope_spans.scope.name == "soak"
        spans = list(scope_spans.spans)
        assert len(spans) == bench.TURNS_PER_REQUEST * bench.SPANS_PER_TURN
        for i, conv in enumerate(convs):
            root, llm, tool_a, tool_b = spans[4 * i : 4 * i + 4]
            assert [s.name for s in (root, llm, tool_a, tool_b)] == [
                "handle_message",
                "chat gpt-4o-mini",
                "execute_tool lookup_order",
                "execute_tool reply",
            ]
            assert len({s.trace_id for s in (root, llm, tool_a, tool_b)}) == 1
            assert root.trace_id not in seen_traces and len(root.trace_id) == 16
            seen_traces.add(root.trace_id)
            for s in (root, llm, tool_a, tool_b):
                assert len(s.span_id) == 8 and s.span_id not in seen_spans
                seen_spans.add(s.span_id)
                assert s.end_time_unix_nano - s.start_time_unix_nano == 50_000_000
                assert _attrs(s)["gen_ai.conversation.id"] == conv.thread_id
            assert root.parent_span_id == b""
            assert llm.parent_span_id == root.span_id
            assert tool_a.parent_span_id == llm.span_id
            assert tool_b.parent_span_id == root.span_id
            offsets = [
                s.start_time_unix_nano - root.start_time_unix_nano for s in spans[4 * i :][:4]
            ]
            assert offsets == [0, 1_000_000, 2_000_000, 3_000_000]
            assert [len(s.attributes) for s in (root, llm, tool_a, tool_b)] == [10, 8, 9, 9]

            turn = _attrs(root)
            n = turn_numbers.get(conv.thread_id, -1) + 1
            turn_numbers[conv.thread_id] = n
            assert turn == {
                "gen_ai.conversation.id": conv.thread_id,
                "app.tenant": "acme",
                "app.plan": "pro",
                "deployment.region": "eu-west-1",
                "http.route": "/chat",
                "app.version": "1.2.3",
                "app.feature_flag": False,
                "app.shard": 7,
                "otel_threads.is_turn": True,
                "turn.n": n,
            }
            call = _attrs(llm)
            assert json.loads(call.pop("gen_ai.input.messages")) == [
                {
                    "role": "user",
                    "parts": [
                        {
                            "type": "text",
                            "content": f"question {n} of {conv.thread_id}: where is my order?",
                        }
                    ],
                }
            ]
            assert json.loads(call.pop("gen_ai.output.messages")) == [
                {
                    "role": "assistant",
                    "finish_reason": "stop",
                    "parts": [{"type": "text", "content": f"answer {n}: it ships tomorrow."}],
                }
            ]
            assert call == {
                "gen_ai.conversation.id": conv.thread_id,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 40,
                "app.tenant": "acme",
            }
            for tool in (tool_a, tool_b):
                attrs = _attrs(tool)
                assert attrs.pop("gen_ai.tool.name") == "lookup_order"
                per_turn = ("otel_threads.is_turn", "turn.n")
                assert attrs == {k: v for k, v in turn.items() if k not in per_turn}
    # conversations ended (at their length) and new ones began, each numbered from 0
    assert conversations.started > bench.ACTIVE_THREADS
    lengths = {n for n, _ in bench.LENGTHS}
    assert any(turn_numbers[t] + 1 in lengths for t in turn_numbers)


def test_varints_of_every_width():
    # a varint's 7-bit groups, least significant first, the high bit on all but the last
    for n in (0, 1, 127, 128, 300, 16_383, 16_384, 2**21, 2**35 + 5, 2**63 - 1):
        encoded = bench._varint(n)
        assert all(b & 0x80 for b in encoded[:-1]) and not encoded[-1] & 0x80
        assert sum((b & 0x7F) << (7 * i) for i, b in enumerate(encoded)) == n
