"""A thread crosses services over HTTP with the default propagators (tracecontext, baggage).

Two TracerProviders stand for two services; the back service is a real HTTP
server on an ephemeral loopback port that extracts the caller's context.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from otel_threads import current_thread_id, thread
from otel_threads.testing import Capture

CONV = "gen_ai.conversation.id"


@contextmanager
def back_service(cap: Capture) -> Iterator[str]:
    """Serve POST {"open_thread": id|null}; reply with what the handler saw."""
    tracer = cap.tracer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            ctx = propagate.extract({k.lower(): v for k, v in self.headers.items()})
            tid = body.get("open_thread")
            block = thread(tid) if tid else None
            token = otel_context.attach(ctx)
            try:
                if block is not None:
                    block.__enter__()
                try:
                    with tracer.start_as_current_span("server", kind=trace.SpanKind.SERVER):
                        with tracer.start_as_current_span("db"):
                            seen = current_thread_id()
                finally:
                    if block is not None:
                        block.__exit__(None, None, None)
            finally:
                otel_context.detach(token)
            out = json.dumps({"thread": seen}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        worker.join()


def call(url: str, open_thread: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    propagate.inject(headers)
    req = urllib.request.Request(
        url, data=json.dumps({"open_thread": open_thread}).encode(), headers=headers
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def services():
    front, back = Capture(), Capture(first_span_id=1000)
    yield front, back
    front.shutdown()
    back.shutdown()


def attrs(cap: Capture) -> dict[str, dict]:
    return cap.thread_attributes()


def test_the_called_service_continues_the_thread_and_the_callers_turn(services):
    front, back = services
    with back_service(back) as url, thread("t") as t:
        with front.tracer.start_as_current_span("turn"):  # span 1
            with front.tracer.start_as_current_span("client", kind=trace.SpanKind.CLIENT):
                assert call(url) == {"thread": "t"}
    assert t.last_turn_id == format(1, "016x")
    assert attrs(front)["turn"]["otel_threads.is_turn"] is True
    # No new turn over there: the turn span lives in the front service.
    assert attrs(back) == {"db": {CONV: "t"}, "server": {CONV: "t"}}
    server = back.by_name("server")
    assert server.parent is not None and server.parent.is_remote
    assert format(server.parent.span_id, "016x") == format(2, "016x")


def test_reopening_the_same_thread_in_the_called_service_counts_no_new_turn(services):
    front, back = services
    with back_service(back) as url, thread("t"), front.tracer.start_as_current_span("turn"):
        call(url, open_thread="t")
    assert attrs(back) == {"db": {CONV: "t"}, "server": {CONV: "t"}}


def test_a_caller_outside_threads_sends_no_thread(services):
    front, back = services
    with back_service(back) as url, front.tracer.start_as_current_span("request"):
        assert call(url) == {"thread": None}
    assert attrs(back) == {"db": {}, "server": {}}


def test_the_called_service_may_start_its_own_turns(services):
    front, back = services
    with back_service(back) as url:
        with front.tracer.start_as_current_span("request"):  # caller sends no thread
            call(url, open_thread="t")
        with thread("t"), front.tracer.start_as_current_span("turn"):
            call(url, open_thread="back-own-thread")
    back_attrs = [(s.name, dict(s.attributes or {})) for s in back.spans() if s.name == "server"]
    first, second = back_attrs
    assert first[1]["otel_threads.is_turn"] is True and first[1][CONV] == "t"
    assert second[1]["otel_threads.is_turn"] is True and second[1][CONV] == "back-own-thread"
