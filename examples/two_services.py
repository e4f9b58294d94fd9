"""Two services, one thread: a front service calls a back service over HTTP.

The front service opens the thread and handles each user message (the turn); it
calls the back service over HTTP with the standard propagators (W3C tracecontext and
baggage), and the back service looks things up and asks the model. Each runs in its
own process with its own ``service.name``, and both export to the same collector.
``thread()`` puts the thread id into baggage, so the back service's
ThreadSpanProcessor puts its spans in the same thread, and the store places them in
the caller's turn.

    otel-threads collect &
    python examples/two_services.py          # starts the back service, then the front

Expected result: one thread, ``order-chat-7``, with 2 turns. Each turn is the front's
``front.handle`` span and holds 5 spans from both services: ``front.handle`` and
``front.call_back`` (service ``front``), ``back.answer``, ``back.lookup`` and the LLM
call (service ``back``). The transcript:

    user       Where is order B-77?
    assistant  Order B-77 is packed and leaves today.
    user       Can it come by Friday?
    assistant  Yes, standard shipping reaches you by Thursday.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

THREAD_ID = "order-chat-7"
QUESTIONS = ["Where is order B-77?", "Can it come by Friday?"]
ANSWERS = [
    "Order B-77 is packed and leaves today.",
    "Yes, standard shipping reaches you by Thursday.",
]


def back() -> None:
    """The back service: POST /answer with the conversation; answers with the model's reply.
    Serves until its standard input closes."""
    from llm_setup import MODEL, llm_app
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    with llm_app("back", ANSWERS) as (client, tracer):

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                # the caller's trace context and baggage (the thread id) from the headers
                with tracer.start_as_current_span(
                    "back.answer", context=extract(self.headers), kind=trace.SpanKind.SERVER
                ):
                    with tracer.start_as_current_span("back.lookup"):
                        pass
                    answer = (
                        client.chat.completions.create(model=MODEL, messages=body["messages"])
                        .choices[0]
                        .message.content
                    )
                data = json.dumps({"answer": answer}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        print(f"listening on {server.server_address[1]}", flush=True)
        sys.stdin.read()  # until the front closes our stdin
        server.shutdown()


def front() -> str:
    """The front service: starts the back service, then handles the user's messages."""
    from llm_setup import llm_app
    from opentelemetry import trace
    from opentelemetry.propagate import inject

    from otel_threads import thread

    service = subprocess.Popen(
        [sys.executable, __file__, "back"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(service.stdout.readline().split()[-1])
        history: list[dict] = []
        with llm_app("front") as (_, tracer):
            for question in QUESTIONS:
                history.append({"role": "user", "content": question})
                with thread(THREAD_ID), tracer.start_as_current_span("front.handle"):
                    with tracer.start_as_current_span(
                        "front.call_back", kind=trace.SpanKind.CLIENT
                    ):
                        headers = {"Content-Type": "application/json"}
                        inject(headers)  # traceparent, and baggage with the thread id
                        request = urllib.request.Request(
                            f"http://127.0.0.1:{port}/answer",
                            headers=headers,
                            data=json.dumps({"messages": history}).encode(),
                        )
                        with urllib.request.urlopen(request, timeout=30) as response:
                            answer = json.loads(response.read())["answer"]
                history.append({"role": "assistant", "content": answer})
                print(f"user: {question}\nassistant: {answer}")
    finally:
        service.stdin.close()  # the back service flushes its spans and exits
        service.wait(timeout=30)
    print(f"thread id: {THREAD_ID}")
    return THREAD_ID


if __name__ == "__main__":
    back() if sys.argv[1:] == ["back"] else front()
