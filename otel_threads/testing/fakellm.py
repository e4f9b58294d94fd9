"""A small deterministic OpenAI-compatible chat server, for tests, examples and the demo.

It answers ``POST /v1/chat/completions`` (also under ``/chat/completions``) the way
the OpenAI API does, without a network or a model, so real clients and real
instrumentation packages run unchanged against it::

    from openai import OpenAI
    from otel_threads.testing.fakellm import FakeLLM

    with FakeLLM() as llm:                       # binds 127.0.0.1:0
        client = OpenAI(base_url=llm.base_url, api_key="unused")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...], tools=[...])

or from a shell: ``python -m otel_threads.testing.fakellm --port 8000``.

Replies, first rule that applies (the same request always gets the same reply):

1. the next of the scripted ``replies`` given to `FakeLLM`, if any are left: a
   string is a text answer, ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``
   a tool call, ``{"content": ..., "finish_reason": ...}`` anything else;
2. tools offered and the last message is the user's: one call of the first tool
   (``get_order_status`` when offered), arguments built from its JSON schema; an
   ``order_id`` is the first word of the user's text that looks like one
   (``A-1042``), else ``"A-1"``;
3. the last message is a tool result: ``"Here is what I found: <result>"``;
4. otherwise ``"You said: <the user's last text>"``.

Tool call ids are ``call_1``, ``call_2``, ... in the order this server made them;
response ids ``chatcmpl-fake-1``, ... . Usage counts whitespace-separated words.
The response model is `RESPONSE_MODELS` of the requested model, else the requested
model itself. ``"stream": true`` answers with server-sent events, ending with a
usage chunk when ``stream_options.include_usage`` is true, then ``data: [DONE]``.
Every request body received is kept in `FakeLLM.requests`.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RESPONSE_MODELS", "FakeLLM", "main"]

#: Dated model names reported for the usual aliases.
RESPONSE_MODELS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
}
_CREATED = 1_700_000_000
_ORDER_ID = re.compile(r"\b[A-Z]{1,3}-?\d+\b")


def _text(content: Any) -> str:
    """The text of an OpenAI message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _words(text: str) -> int:
    return len(text.split())


def _example_arguments(tool: dict, user_text: str) -> dict:
    params = (tool.get("function") or {}).get("parameters") or {}
    props = params.get("properties") or {}
    args: dict[str, Any] = {}
    for name in params.get("required") or list(props)[:1]:
        kind = (props.get(name) or {}).get("type", "string")
        if name == "order_id":
            found = _ORDER_ID.search(user_text)
            args[name] = found.group(0) if found else "A-1"
        elif kind in ("integer", "number"):
            args[name] = 1
        elif kind == "boolean":
            args[name] = True
        else:
            args[name] = user_text.split()[-1] if user_text.split() else "example"
    return args


class FakeLLM:
    """The server. `start` binds ``host:port`` (0: any free port) and returns `base_url`.

    ``replies`` scripts the answers in order (see the module doc); when they run
    out the deterministic rules apply. `stop` is idempotent and safe before `start`.
    """

    def __init__(
        self, replies: Iterable[str | dict] = (), *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.host, self.port = host, port
        self.requests: list[dict] = []
        self._replies = list(replies)
        self._lock = threading.Lock()
        self._calls = 0
        self._tool_calls = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``: what OpenAI clients take as ``base_url``."""
        if self._server is None:
            raise RuntimeError("FakeLLM is not started: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> str:
        if self._server is None:
            owner = self

            class Handler(_Handler):
                llm = owner

            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="fakellm", daemon=True
            )
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeLLM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the answer ------------------------------------------------------------

    def reply(self, request: dict) -> dict:
        """The chat completion (non-streaming form) for one request body."""
        messages = request.get("messages") or []
        tools = request.get("tools") or []
        model = str(request.get("model") or "gpt-4o-mini")
        last = messages[-1] if messages else {}
        with self._lock:
            self.requests.append(request)
            self._calls += 1
            number = self._calls
            scripted = self._replies.pop(0) if self._replies else None
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if isinstance(scripted, str):
            message["content"] = scripted
        elif isinstance(scripted, dict):
            message["content"] = scripted.get("content")
            calls = scripted.get("tool_calls") or []
            if calls:
                message["tool_calls"] = [
                    self._tool_call(c["name"], c.get("arguments", {})) for c in calls
                ]
            finish = scripted.get("finish_reason") or ("tool_calls" if calls else "stop")
        elif tools and last.get("role") == "user":
            names = [(t.get("function") or {}).get("name") for t in tools]
            tool = (
                tools[names.index("get_order_status")] if "get_order_status" in names else tools[0]
            )
            args = _example_arguments(tool, _text(last.get("content")))
            message["tool_calls"] = [self._tool_call(tool["function"]["name"], args)]
            finish = "tool_calls"
        elif last.get("role") == "tool":
            message["content"] = f"Here is what I found: {_text(last.get('content'))}"
        else:
            said = next(
                (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
            )
            message["content"] = f"You said: {said}"
        prompt = sum(_words(_text(m.get("content"))) for m in messages)
        completion = _words(message["content"] or "") + sum(
            _words(c["function"]["arguments"]) for c in message.get("tool_calls", [])
        )
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": _CREATED,
            "model": RESPONSE_MODELS.get(model, model),
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _tool_call(self, name: str, arguments: Any) -> dict:
        with self._lock:
            self._tool_calls += 1
            number = self._tool_calls
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        return {
            "id": f"call_{number}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }


def _chunks(completion: dict, include_usage: bool) -> Iterable[dict]:
    """The SSE chunks of a completion: role, content words, tool calls, finish, usage."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict, finish: str | None = None) -> dict:
        out = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            out["usage"] = None
        return out

    yield chunk({"role": "assistant", "content": "" if message["content"] is not None else None})
    if message["content"]:
        words = message["content"].split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word if i == 0 else " " + word})
    for index, call in enumerate(message.get("tool_calls", [])):
        args = call["function"]["arguments"]
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        half = len(args) // 2
        for piece in (args[:half], args[half:]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**base, "choices": [], "usage": completion["usage"]}


class _Handler(BaseHTTPRequestHandler):
    llm: FakeLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": _CREATED, "owned_by": "fakellm"}
                        for m in RESPONSE_MODELS
                    ],
                },
            )
        else:
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(
                400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}}
            )
            return
        if self.path.split("?")[0].rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            self._send(
                400,
                {
                    "error": {
                        "message": "'messages' must be a list",
                        "type": "invalid_request_error",
                    }
                },
            )
            return
        completion = self.llm.reply(request)
        if not request.get("stream"):
            self._send(200, completion)
            return
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in _chunks(completion, include_usage):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def main(argv: list[str] | None = None) -> None:
    """``python -m otel_threads.testing.fakellm [--host H] [--port P]``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m otel_threads.testing.fakellm",
        description="A deterministic OpenAI-compatible chat server (POST /v1/chat/completions).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    llm = FakeLLM(host=args.host, port=args.port)
    print(f"fakellm listening: OPENAI_BASE_URL={llm.start()}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        llm.stop()


if __name__ == "__main__":
    main()
