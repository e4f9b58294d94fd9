"""The helpers otel_threads offers for tests (ours and users'): `capture` with a
`FixedClock`, and a collector in the test's process (`otel_threads.collector.testing`)."""

from __future__ import annotations

import os

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

from otel_threads import thread
from otel_threads.collector.testing import running, sql
from otel_threads.testing import FixedClock, capture


def _spans(clock: FixedClock | None):
    with capture(clock=clock) as cap:
        with thread("t"), cap.tracer.start_as_current_span("turn") as turn:
            turn.add_event("asked")
            with cap.tracer.start_as_current_span("child"):
                pass
        return cap.spans()


def test_a_fixed_clock_gives_the_same_times_every_run_in_the_same_order():
    clock = FixedClock(start_ns=1_000, step_ns=10)
    first, second = _spans(clock), _spans(clock)
    times = [(s.name, s.start_time, s.end_time, [e.timestamp for e in s.events]) for s in first]
    assert times == [
        (s.name, s.start_time, s.end_time, [e.timestamp for e in s.events]) for s in second
    ]
    # turn starts, its event, the child starts and ends, the turn ends: 5 instants
    assert times == [("child", 1_020, 1_030, []), ("turn", 1_000, 1_040, [1_010])]
    assert dict(first[1].attributes) == dict(_spans(None)[1].attributes)
    real = _spans(None)
    assert real[1].start_time > 1_000_000_000_000_000_000  # without a clock: the real one


def test_running_gives_a_started_collector_on_loopback_and_stops_it(tmp_path):
    with capture() as cap:
        with thread("harnessed"), cap.tracer.start_as_current_span("turn"):
            pass
        spans = cap.spans()
    with running(tmp_path / "h.duckdb", http=None) as c:
        assert c.endpoints.http is None
        assert c.endpoints.grpc.startswith("http://127.0.0.1:")
        assert c.endpoints.api.startswith("http://127.0.0.1:")
        exporter = OTLPSpanExporter(endpoint=c.endpoints.grpc, insecure=True)
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()
        assert sql(c, "SELECT thread_id, turn_count FROM threads") == [("harnessed", 1)]
    assert os.path.exists(tmp_path / "h.duckdb")
    assert not os.path.exists(f"{tmp_path / 'h.duckdb'}.collector.json")  # stopped
