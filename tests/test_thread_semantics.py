"""Thread and turn semantics (CONTRACT.md section 1), through the public API."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_threads import ThreadSpanProcessor, current_thread_id, current_turn_id, thread
from otel_threads.testing import SequentialIdGenerator, capture

CONV = "gen_ai.conversation.id"
TURN = "otel_threads.turn_id"
IS_TURN = "otel_threads.is_turn"
PREV = "otel_threads.previous_turn_id"


def sid(n: int) -> str:
    return format(n, "016x")


def turn(thread_id: str, span_n: int, **extra: object) -> dict[str, object]:
    return {CONV: thread_id, TURN: sid(span_n), IS_TURN: True, **extra}


def child(thread_id: str, turn_span_n: int) -> dict[str, object]:
    return {CONV: thread_id, TURN: sid(turn_span_n)}


@pytest.fixture
def cap():
    with capture() as c:
        yield c


def test_first_span_in_a_thread_is_a_turn_and_its_descendants_belong_to_it(cap):
    tr = cap.tracer
    with thread("support_thread_42") as t:
        assert t.thread_id == "support_thread_42"
        with tr.start_as_current_span("handle"):  # span 1
            with tr.start_as_current_span("llm"):  # span 2
                with tr.start_as_current_span("http"):  # span 3
                    assert t.turn_id == sid(1)
        with tr.start_as_current_span("second"):  # span 4
            pass
    with tr.start_as_current_span("outside"):
        pass
    assert cap.thread_attributes() == {
        "http": child("support_thread_42", 1),
        "llm": child("support_thread_42", 1),
        "handle": turn("support_thread_42", 1),
        "second": turn("support_thread_42", 4),
        "outside": {},
    }
    assert t.last_turn_id == sid(4)


def test_auto_thread_ids_are_uuidv7_and_time_ordered():
    ids = [thread().thread_id for _ in range(2000)]
    pattern = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(pattern.fullmatch(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    ms = int(ids[0].replace("-", "")[:12], 16)
    assert abs(ms - time.time() * 1000) < 60_000


def test_thread_none_groups_nothing(cap):
    with thread(None) as t, cap.tracer.start_as_current_span("a"):
        assert t.thread_id is None
        assert current_thread_id() is None
    assert cap.thread_attributes() == {"a": {}}


def test_other_thread_inside_a_turn_then_a_child_after_it_is_in_the_outer_turn(cap):
    tr = cap.tracer
    with thread("outer"):
        with tr.start_as_current_span("outer-turn"):  # 1
            with thread("inner"), tr.start_as_current_span("inner-op"):  # 2
                pass
            with tr.start_as_current_span("after"):  # 3
                pass
    assert cap.thread_attributes() == {
        "inner-op": turn("inner", 2),
        "after": child("outer", 1),
        "outer-turn": turn("outer", 1),
    }


def test_same_thread_reentered_inside_its_turn_starts_no_new_turn(cap):
    tr = cap.tracer
    with thread("t"), tr.start_as_current_span("turn"):  # 1
        with thread("t"):
            with tr.start_as_current_span("a"):  # 2
                with tr.start_as_current_span("b"):  # 3
                    pass
        with tr.start_as_current_span("c"):  # 4
            pass
    assert cap.thread_attributes() == {
        "b": child("t", 1),
        "a": child("t", 1),
        "c": child("t", 1),
        "turn": turn("t", 1),
    }


def test_thread_none_inside_a_turn_then_a_child_is_in_the_outer_turn(cap):
    tr = cap.tracer
    with thread("t"), tr.start_as_current_span("turn"):  # 1
        with thread(None), tr.start_as_current_span("untracked"):  # 2
            assert current_thread_id() is None
            assert baggage.get_baggage(CONV) is None
        with tr.start_as_current_span("child"):  # 3
            pass
    assert cap.thread_attributes() == {
        "untracked": {},
        "child": child("t", 1),
        "turn": turn("t", 1),
    }


def test_interleaved_generators_keep_their_children_in_their_own_turns(cap):
    tr = cap.tracer

    def stream(name: str):
        # A streaming call: its span starts when the generator first runs and each
        # chunk is a child of it. Nothing is attached across a `yield`, so the two
        # generators' contexts cannot leak into each other.
        span = tr.start_span(name)
        parent = trace.set_span_in_context(span)
        try:
            for i in range(2):
                tr.start_span(f"{name}-chunk{i}", context=parent).end()
                yield i
        finally:
            span.end()

    with thread("t"):
        a, b = stream("a"), stream("b")
        next(a)  # a = span 1, a-chunk0 = 2
        next(b)  # b = span 3, b-chunk0 = 4
        next(a)  # a-chunk1 = 5
        next(b)  # b-chunk1 = 6
        for g in (a, b):
            for _ in g:
                pass
    got = cap.thread_attributes()
    assert got["a"] == turn("t", 1) and got["b"] == turn("t", 3)
    assert got["a-chunk0"] == got["a-chunk1"] == child("t", 1)
    assert got["b-chunk0"] == got["b-chunk1"] == child("t", 3)


@pytest.mark.parametrize("how", ["whole context", "parent span only"])
def test_pool_worker_with_an_explicit_parent_context_stays_in_the_turn(cap, how):
    tr = cap.tracer

    def work(ctx: context.Context) -> str | None:
        with tr.start_as_current_span("worker", context=ctx):
            return current_thread_id()

    with ThreadPoolExecutor(1) as pool, thread("t"):
        with tr.start_as_current_span("turn") as span:  # 1
            ctx = (
                context.get_current()
                if how == "whole context"
                else (trace.set_span_in_context(span, context.Context()))
            )
            assert pool.submit(work, ctx).result() == "t"
    assert cap.thread_attributes() == {"worker": child("t", 1), "turn": turn("t", 1)}


def test_pool_worker_without_a_parent_context_is_not_in_the_thread(cap):
    tr = cap.tracer
    with ThreadPoolExecutor(1) as pool, thread("t"), tr.start_as_current_span("turn"):
        pool.submit(lambda: tr.start_span("orphan").end()).result()
    assert cap.thread_attributes()["orphan"] == {}


def test_asyncio_gather_inside_one_thread_block_gives_two_turns(cap):
    tr = cap.tracer

    async def op(name: str) -> str | None:
        with tr.start_as_current_span(name):
            await asyncio.sleep(0.001)
            with tr.start_as_current_span(f"{name}-child"):
                await asyncio.sleep(0.001)
            return current_turn_id()

    async def main() -> list[str | None]:
        async with thread("t"):
            return await asyncio.gather(op("x"), op("y"))

    turn_x, turn_y = asyncio.run(main())
    got = cap.thread_attributes()
    assert {got["x"][TURN], got["y"][TURN]} == {turn_x, turn_y} and turn_x != turn_y
    assert got["x"][IS_TURN] is True and got["y"][IS_TURN] is True
    assert got["x-child"] == {CONV: "t", TURN: turn_x}
    assert got["y-child"] == {CONV: "t", TURN: turn_y}


def test_thread_block_inside_a_running_span_with_nothing_started_in_it_groups_nothing(cap):
    tr = cap.tracer
    # The pitfall: the block opens inside the span that should have been the turn.
    with tr.start_as_current_span("request"), thread("t"):
        pass
    # The right placement: the block around the span that is the turn.
    with thread("t"), tr.start_as_current_span("request-ok"):  # span 2
        pass
    assert cap.thread_attributes() == {"request": {}, "request-ok": turn("t", 2)}


def test_leaving_a_block_restores_everything_also_on_exceptions(cap):
    tr = cap.tracer
    before = context.get_current()
    with thread("outer") as outer:
        with pytest.raises(RuntimeError), thread("inner"), tr.start_as_current_span("op"):
            assert current_thread_id() == "inner"
            raise RuntimeError("boom")
        assert current_thread_id() == "outer"
        assert baggage.get_baggage(CONV) == "outer"
        with pytest.raises(KeyError), outer:  # the same handle, entered again
            raise KeyError("x")
        assert current_thread_id() == "outer"
    assert context.get_current() == before
    assert current_thread_id() is None and baggage.get_baggage(CONV) is None


@pytest.mark.parametrize("bad", ["", "x" * 257, "a\nb", "tab\there", "nul\x00", "del\x7f"])
def test_invalid_thread_ids_raise_value_error(bad):
    with pytest.raises(ValueError, match="thread id must be 1-256 printable characters"):
        thread(bad)


@pytest.mark.parametrize("bad", [42, b"bytes", ["list"], 1.5])
def test_non_string_thread_ids_raise_type_error(bad):
    with pytest.raises(TypeError, match="thread id must be a str"):
        thread(bad)


def test_long_and_unicode_thread_ids_are_accepted():
    assert thread("x" * 256).thread_id == "x" * 256
    assert thread("fil d'Ariane — 会話 🧵").thread_id == "fil d'Ariane — 会話 🧵"


def test_previous_turn_id_links_the_first_turn_only_and_last_turn_id_follows(cap):
    tr = cap.tracer
    with thread("t", previous_turn_id="00000000000000AB") as t:
        assert t.previous_turn_id == "00000000000000ab"
        with tr.start_as_current_span("first"):  # 1
            pass
        assert t.last_turn_id == sid(1)
        with tr.start_as_current_span("second"):  # 2
            pass
        assert t.last_turn_id == sid(2)
    assert cap.thread_attributes() == {
        "first": turn("t", 1, **{PREV: "00000000000000ab"}),
        "second": turn("t", 2),
    }


def test_previous_turn_id_without_a_thread_id_mints_none(cap):
    tr = cap.tracer
    with thread(previous_turn_id=0xAB) as t:
        assert t.thread_id is None
        with tr.start_as_current_span("turn"):  # 1
            with tr.start_as_current_span("child"):  # 2
                assert current_turn_id() == sid(1) == t.turn_id
        with tr.start_as_current_span("again"):  # 3
            pass
    assert t.last_turn_id == sid(3)
    assert cap.thread_attributes() == {
        "child": {TURN: sid(1)},
        "turn": {TURN: sid(1), IS_TURN: True, PREV: sid(0xAB)},
        "again": {TURN: sid(3), IS_TURN: True},
    }


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"previous_turn_id": "xyz"}, ValueError),
        ({"previous_turn_id": "0" * 16}, ValueError),
        ({"previous_turn_id": 0}, ValueError),
        ({"previous_turn_id": 2**64}, ValueError),
        ({"previous_turn_id": 1.0}, TypeError),
        ({"previous_turn_id": True}, TypeError),
    ],
)
def test_invalid_previous_turn_ids_are_refused(kwargs, error):
    with pytest.raises(error, match="previous_turn_id"):
        thread("t", **kwargs)


def test_thread_none_cannot_take_a_previous_turn_id():
    with pytest.raises(ValueError, match="no thread"):
        thread(None, previous_turn_id="00000000000000ab")


@pytest.mark.parametrize(
    ("compat", "turn_extra", "child_extra"),
    [
        (
            ("weave",),
            {"wandb.thread_id": "t", "wandb.is_turn": True},
            {"wandb.thread_id": "t", "wandb.is_turn": False},
        ),
        (("openinference",), {"session.id": "t"}, {"session.id": "t"}),
        (("langfuse",), {"langfuse.session.id": "t"}, {"langfuse.session.id": "t"}),
    ],
)
def test_compat_writes_each_backends_own_keys(compat, turn_extra, child_extra):
    with capture(compat=compat) as cap:
        with thread("t"), cap.tracer.start_as_current_span("turn"):
            with cap.tracer.start_as_current_span("child"):
                pass
        with cap.tracer.start_as_current_span("outside"):
            pass
        attrs = {s.name: dict(s.attributes or {}) for s in cap.spans()}
    assert attrs["turn"] == {**turn("t", 1), **turn_extra}
    assert attrs["child"] == {**child("t", 1), **child_extra}
    assert attrs["outside"] == {}


def test_unknown_compat_backend_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown compat backend\(s\) \['phoenix'\]"):
        ThreadSpanProcessor(compat=("phoenix",))


def test_processor_failures_are_counted_and_logged_once(caplog):
    processor = ThreadSpanProcessor()
    span = TracerProvider().get_tracer("t").start_span("s")
    with caplog.at_level(logging.ERROR, logger="otel_threads"):
        processor.on_start(span, parent_context=42)  # not a Context: must not raise
        processor.on_start(span, parent_context=42)
    span.end()
    assert processor.failures == 2
    assert len([r for r in caplog.records if "failed to mark a span" in r.message]) == 1


def test_attribute_limits_are_respected_through_the_public_path():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        id_generator=SequentialIdGenerator(),
        span_limits=SpanLimits(max_span_attributes=2, max_span_attribute_length=5),
    )
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with thread("a-long-thread-id"), provider.get_tracer("t").start_as_current_span("s"):
        pass
    (span,) = exporter.get_finished_spans()
    assert len(span.attributes) == 2  # the SDK's limit held
    assert all(len(v) <= 5 for v in span.attributes.values() if isinstance(v, str))


def test_current_ids_and_turn_id_follow_the_current_span(cap):
    tr = cap.tracer
    assert current_thread_id() is None and current_turn_id() is None
    with thread("t") as t:
        assert current_thread_id() == "t" and t.turn_id is None
        with tr.start_as_current_span("turn"):  # 1
            assert current_turn_id() == sid(1) == t.turn_id
            with thread("other") as o:
                assert t.turn_id == sid(1) and o.turn_id is None
                with tr.start_as_current_span("o"):  # 2
                    assert o.turn_id == sid(2) and t.turn_id is None
    assert current_turn_id() is None
