"""The web page explains what it shows: a failed turn's error in the chat, an LLM span's
detail as a conversation, and why a thread has no messages; the API gives it what it
needs (each failed turn's error, which spans are LLM calls, an LLM span's messages,
the setting that captures content). Over real HTTP, and in a real browser (Playwright
driving Debian's chromium, as tests/test_web.py), against a real collector fed by the
official OpenAI instrumentation through the real OTLP exporter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from stored_app import App

from otel_threads import ThreadsClient, thread
from otel_threads.collector import Collector, Config
from otel_threads.collector.testing import running, sql
from otel_threads.schemas import ERROR_TEXT_CHARS, TurnError

ANY = ("127.0.0.1", 0)
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_order_status",
        "description": "Where an order is.",
        "parameters": {
            "type": "object",
            "required": ["order_id"],
            "properties": {"order_id": {"type": "string"}},
        },
    },
}


def _support_turn(client, tracer) -> None:
    """A turn with a tool loop: a tool call, its result, the answer (two LLM calls)."""
    history = [{"role": "user", "content": "Where is order A-1042?"}]
    with tracer.start_as_current_span("handle_message"):
        reply = (
            client.chat.completions.create(
                model="gpt-4o-mini", messages=history, tools=[TOOL], temperature=0.3, max_tokens=200
            )
            .choices[0]
            .message
        )
        history.append(reply.model_dump(exclude_none=True))
        history.append(
            {"role": "tool", "tool_call_id": reply.tool_calls[0].id, "content": "A-1042: shipped"}
        )
        client.chat.completions.create(
            model="gpt-4o-mini", messages=history, tools=[TOOL], temperature=0.3, max_tokens=200
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A collector holding:
    - ``failing``: a turn with a tool loop; a turn whose model answered, then a step
      below it raised ValueError (two lines); a turn that failed by its status only;
      a turn whose exception message is hostile HTML; a turn whose message is huge;
    - ``quiet``: two turns of the OpenAI instrumentation without content capture;
    - ``flat`` and ``oi``: LLM spans of OpenLLMetry <= 0.54 and OpenInference, without
      their messages (spans made by hand with those libraries' attributes)."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.trace import Status, StatusCode

    from otel_threads.testing.fakellm import FakeLLM

    db = tmp_path_factory.mktemp("read") / "read.duckdb"
    c = Collector(Config(parse_workers=0, db=str(db), grpc=ANY, http=None, api=ANY))
    c.start()
    saved = {k: os.environ.get(k) for k in ("OTEL_SEMCONV_STABILITY_OPT_IN", CAPTURE)}
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ[CAPTURE] = "SPAN_ONLY"
    app = App()
    tracer = app.tracer
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=app.provider)
    try:
        import openai

        with FakeLLM() as llm:
            client = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0)
            with thread("failing"):
                _support_turn(client, tracer)
            try:
                with thread("failing"), tracer.start_as_current_span("handle_message"):
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "Cancel it"}]
                    )
                    with tracer.start_as_current_span("cancel_order"):
                        raise ValueError("order A-1042 cannot be cancelled\nit has shipped")
            except ValueError:
                pass
            with thread("failing"), tracer.start_as_current_span("handle_message") as sp:
                sp.set_status(Status(StatusCode.ERROR, "quota exceeded"))
            for text in (HOSTILE, "x" * (ERROR_TEXT_CHARS + 5000)):
                try:
                    with thread("failing"), tracer.start_as_current_span("handle_message"):
                        raise RuntimeError(text)
                except RuntimeError:
                    pass
            instrumentor.uninstrument()
            os.environ.pop(CAPTURE)  # the instrumentation's default: no content
            instrumentor = OpenAIInstrumentor()
            instrumentor.instrument(tracer_provider=app.provider)
            for text in ("hi", "and again"):
                with thread("quiet"), tracer.start_as_current_span("ask"):
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
                    )
        for thread_id, marks in (
            ("flat", {"llm.request.type": "chat", "gen_ai.system": "openai"}),
            ("oi", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini"}),
        ):
            with thread(thread_id), tracer.start_as_current_span("turn"):
                with tracer.start_as_current_span("llm call", attributes=marks):
                    pass
        app.send(c)
        assert sql(c, "SELECT count(*) FROM threads") == [(4,)]
        yield c
    finally:
        instrumentor.uninstrument()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        c.stop()


def get(c: Collector, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(c.endpoints.api + path, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def detail(c: Collector, thread_id: str) -> dict:
    status, body = get(c, f"/threads/{thread_id}")
    assert status == 200, body
    return body


def spans(c: Collector, thread_id: str, turn_id: str) -> list[dict]:
    status, body = get(c, f"/threads/{thread_id}/turns/{turn_id}/spans")
    assert status == 200, body
    return body["spans"]


# -- the API ------------------------------------------------------------------------------


def test_each_failed_turn_says_why(site):
    turns = detail(site, "failing")["turns"]
    assert [t["has_error"] for t in turns] == [False, True, True, True, True]
    assert turns[0]["error"] is None
    raised = turns[1]["error"]
    assert raised["type"] == "ValueError"
    assert raised["message"] == "order A-1042 cannot be cancelled\nit has shipped"
    assert raised["stacktrace"].startswith("Traceback (most recent call last):")
    assert 'raise ValueError("order A-1042' in raised["stacktrace"]
    # the span where it arose, not the turn span it went through
    assert raised["span_name"] == "cancel_order" and raised["error_span_count"] == 2
    names = {s["span_id"]: s["name"] for s in spans(site, "failing", turns[1]["turn_id"])}
    assert names[raised["span_id"]] == "cancel_order"
    # no exception recorded: the status message
    assert turns[2]["error"] == {
        "span_id": turns[2]["span_id"],
        "span_name": "handle_message",
        "type": None,
        "message": "quota exceeded",
        "stacktrace": None,
        "error_span_count": 1,
    }
    assert turns[3]["error"]["message"] == HOSTILE
    huge = turns[4]["error"]["message"]
    assert len(huge) == ERROR_TEXT_CHARS and huge.endswith("…")


def test_the_client_reads_the_errors_back(site):
    turns = ThreadsClient(site.endpoints.api).thread("failing").turns
    assert turns[0].error is None
    assert isinstance(turns[1].error, TurnError) and turns[1].error.type == "ValueError"
    assert turns[2].error.message == "quota exceeded"


def test_llm_spans_are_marked_in_a_turns_spans(site):
    turn = detail(site, "failing")["turns"][0]["turn_id"]
    tree = spans(site, "failing", turn)
    assert [(s["name"], s["llm_call_span_id"]) for s in tree] == [
        ("handle_message", None),
        ("chat gpt-4o-mini", tree[1]["span_id"]),
        ("chat gpt-4o-mini", tree[2]["span_id"]),
    ]


def test_an_llm_spans_messages(site):
    turn = detail(site, "failing")["turns"][0]["turn_id"]
    tree = spans(site, "failing", turn)
    status, body = get(site, f"/threads/failing/turns/{turn}/spans/{tree[2]['span_id']}/messages")
    assert status == 200, body
    call = body["llm_call"]
    assert (call["request_model"], call["response_model"]) == (
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert call["convention"] == "semconv-1.37" and call["input_tokens"] > 0
    said = [(m["direction"], m["role"]) for m in body["messages"]]
    assert said == [
        ("input", "user"),
        ("input", "assistant"),
        ("input", "tool"),
        ("output", "assistant"),
    ]
    asked = body["messages"][1]["tool_calls"][0]
    assert asked["name"] == "get_order_status" and asked["arguments"] == {"order_id": "A-1042"}
    assert body["messages"][2]["content"] == "A-1042: shipped"
    assert body["content_hint"] is None
    # a span that is no LLM call
    status, body = get(site, f"/threads/failing/turns/{turn}/spans/{tree[0]['span_id']}/messages")
    assert status == 200 and body["llm_call"] is None and body["messages"] == []
    # unknown span, or a span of another turn
    other = detail(site, "failing")["turns"][1]["turn_id"]
    for path in (
        f"/threads/failing/turns/{turn}/spans/00000000000000ff/messages",
        f"/threads/failing/turns/{other}/spans/{tree[2]['span_id']}/messages",
        f"/threads/quiet/turns/{turn}/spans/{tree[2]['span_id']}/messages",
    ):
        status, body = get(site, path)
        assert status == 404 and "no span" in body["error"], path
    status, body = get(
        site, f"/threads/failing/turns/{turn}/spans/{tree[2]['span_id']}/messages?wait=9"
    )
    assert status == 400 and "wait must be" in body["error"]


def test_a_thread_without_messages_says_what_to_set(site):
    quiet = detail(site, "quiet")
    assert quiet["transcript"] == [] and quiet["thread"]["llm_call_count"] == 2
    [hint] = quiet["content_hints"]
    assert hint["convention"] == "semconv-1.37"
    assert hint["scope_name"] == "opentelemetry.util.genai.handler"
    assert hint["llm_call_count"] == 2
    assert hint["setting"] == f"{CAPTURE}=SPAN_ONLY"
    assert "OTEL_SEMCONV_STABILITY_OPT_IN" in hint["note"]
    assert detail(site, "failing")["content_hints"] == []  # it has messages
    # the producer seen names its own setting
    assert [h["setting"] for h in detail(site, "flat")["content_hints"]] == [
        "TRACELOOP_TRACE_CONTENT=true"
    ]
    [oi] = detail(site, "oi")["content_hints"]
    assert oi["convention"] == "openinference" and "OPENINFERENCE_HIDE_INPUTS" in oi["setting"]
    # the client too, and an LLM span without messages says it
    assert ThreadsClient(site.endpoints.api).thread("quiet").content_hints[0].setting == (
        f"{CAPTURE}=SPAN_ONLY"
    )
    turn = quiet["turns"][0]["turn_id"]
    call = spans(site, "quiet", turn)[1]
    status, body = get(site, f"/threads/quiet/turns/{turn}/spans/{call['span_id']}/messages")
    assert status == 200 and body["messages"] == []
    assert body["content_hint"]["setting"] == f"{CAPTURE}=SPAN_ONLY"


def test_the_new_reads_need_the_token_and_the_page_script_does_not(tmp_path):
    with running(tmp_path / "t.duckdb", http=None, token="s3cret") as c:
        path = "/threads/x/turns/00/spans/01/messages"
        for token, status in ((None, 401), ("s3cret", 404)):
            req = urllib.request.Request(c.endpoints.api + path)
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            err.value.close()
            assert err.value.code == status
        with urllib.request.urlopen(c.endpoints.api + "/static/explain.js", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/javascript")
            assert b"function spanDetail" in resp.read()


def test_spans_built_to_break_the_views_are_explained_without_error(tmp_path):
    """tests/hostile.py's LLM spans of every convention, every odd value in every key the
    views read, made to fail with an exception event of those values: each thread's
    page, its spans and its LLM span's messages are answered, never a 500."""
    import grpc
    from hostile import hostile_requests
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    traces, logs, threads = hostile_requests(5000, "h-")
    # every tenth: each odd value once or more, each convention three times (all: slow)
    picked = range(0, len(threads), 10)
    keep = {(5000 + 1 + j).to_bytes(16, "big") for j in picked}  # (hostile_requests' ids)
    spans_of = traces.resource_spans[0].scope_spans[0].spans
    kept = [span for span in spans_of if span.trace_id in keep]
    del spans_of[:]
    spans_of.extend(kept)
    records = logs.resource_logs[0].scope_logs[0].log_records
    kept_records = [r for r in records if r.trace_id in keep]
    del records[:]
    records.extend(kept_records)
    for span in spans_of:
        if span.parent_span_id:  # the LLM span: failed, with an odd exception
            span.status.code = Status.STATUS_CODE_ERROR
            event = span.events.add(name="exception", time_unix_nano=span.end_time_unix_nano)
            odd = span.attributes[-1].value
            for key in ("exception.type", "exception.message", "exception.stacktrace"):
                event.attributes.add(key=key).value.CopyFrom(odd)
    with running(tmp_path / "h.duckdb", grpc=ANY, http=None, api=ANY) as c:
        with grpc.insecure_channel(c.endpoints.grpc.split("://", 1)[-1]) as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces, timeout=60)
            logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs, timeout=60)
        # (a trace that does not derive is set aside: test_derive_errors' concern)
        stored = {t for (t,) in sql(c, "SELECT thread_id FROM threads", wait_s=300)}
        sample = [threads[j] for j in picked if threads[j] in stored]
        assert len(sample) > len(picked) // 2
        for thread_id in sample:
            quoted = urllib.parse.quote(thread_id, safe="")
            body = detail(c, quoted)
            [turn] = body["turns"]
            assert turn["has_error"] and turn["error"]["span_id"], thread_id
            tree = spans(c, quoted, turn["turn_id"])
            call = next(s for s in tree if s["llm_call_span_id"])
            status, answer = get(
                c, f"/threads/{quoted}/turns/{turn['turn_id']}/spans/{call['span_id']}/messages"
            )
            assert status == 200 and answer["llm_call"] is not None, (thread_id, answer)


# -- the page, in a real browser ------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("OTEL_THREADS_ARTIFACTS", ROOT / "test-artifacts")) / "web"
CHROMIUM = (
    os.environ.get("OTEL_THREADS_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
UTC_TIME = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, site, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(site.endpoints.api + "/")
    page.wait_for_selector("#threads tbody tr")
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()
    assert errors == [], errors


def open_thread(page, thread_id: str) -> None:
    page.locator(f'#threads tbody tr[data-id="{thread_id}"] td').first.click()
    page.wait_for_function(
        "id => document.querySelector('#d-title').textContent === id", arg=thread_id
    )
    page.wait_for_selector("#d-chat .turn-sec")


def open_spans(page, turn: int) -> None:
    page.locator("#d-turns .turn").nth(turn).locator("button.spans-btn").click()
    page.wait_for_selector("#d-spans:not([hidden]) .span-row")


def test_an_error_turn_explains_itself_in_the_chat(page):
    open_thread(page, "failing")
    section = page.locator("#d-chat .turn-sec").nth(1)
    # the turn's own output, then the error where the next reply would be
    roles = section.locator(".msg").evaluate_all("ms => ms.map(m => m.className)")
    assert roles == ["msg user", "msg assistant", "msg error"]
    error = section.locator(".msg.error")
    assert error.locator(".err-type").text_content() == "ValueError"
    assert "cancel_order" in error.locator(".role").text_content()
    message = error.locator(".err-msg")
    assert message.text_content() == "order A-1042 cannot be cancelled\nit has shipped"
    assert message.evaluate("m => m.innerText") == (  # the line break shows as one
        "order A-1042 cannot be cancelled\nit has shipped"
    )
    stack = error.locator("details.stack")
    assert stack.evaluate("d => d.open") is False  # folded
    assert not stack.locator("pre").is_visible()
    stack.locator("summary").click()
    assert stack.locator("pre").is_visible()
    assert stack.locator("pre").text_content().startswith("Traceback (most recent call last):")
    # the turns list says it in a line
    line = page.locator("#d-turns .turn").nth(1).locator(".io.err").text_content()
    assert line == "✕ ValueError: order A-1042 cannot be cancelled"
    # a turn that failed by its status only: the status message, nothing to unfold
    status_only = page.locator("#d-chat .turn-sec").nth(2)
    assert status_only.locator(".err-msg").text_content() == "quota exceeded"
    assert status_only.locator("details.stack").count() == 0
    assert status_only.locator(".no-msgs").count() == 0
    # an exception message of HTML is shown as those characters
    hostile = page.locator("#d-chat .turn-sec").nth(3).locator(".err-msg")
    assert hostile.text_content() == HOSTILE
    assert page.locator("#d-chat img, #d-chat script").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_an_llm_spans_detail_reads_like_the_conversation(page):
    open_thread(page, "failing")
    open_spans(page, 0)
    assert page.locator(".span-row .badge.llm").count() == 2
    page.locator(".span-row").nth(2).click()  # the second LLM call of the tool loop
    detail = page.locator(".span-detail")
    detail.locator(".llm").wait_for()
    inputs, output = detail.locator(".span-chat").nth(0), detail.locator(".span-chat").nth(1)
    assert inputs.locator(".msg.user .bubble").text_content() == "Where is order A-1042?"
    call = inputs.locator(".msg.assistant .call")
    assert "get_order_status" in call.text_content() and "A-1042" in call.text_content()
    assert inputs.locator(".msg.tool .bubble").text_content() == "A-1042: shipped"
    assert output.locator(".msg.assistant .bubble").text_content() == (
        "Here is what I found: A-1042: shipped"
    )
    params = dict(
        detail.locator(".llm tr").evaluate_all(
            "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
        )
    )
    assert params["request model"] == "gpt-4o-mini"
    assert params["temperature"] == "0.3" and params["max_tokens"] == "200"
    assert "input" in detail.locator(".tokens").text_content()
    facts = dict(
        detail.locator(".readable > section")
        .first.locator("tr")
        .evaluate_all("rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
    )
    assert re.match(UTC_TIME, facts["start"]) and re.match(UTC_TIME, facts["end"])
    # a JSON value is folded
    messages = detail.locator("tr", has_text="gen_ai.input.messages").locator("details.json")
    assert messages.locator("summary").first.text_content() == "[…] 3 items"
    assert messages.first.evaluate("d => d.open") is False
    messages.locator("summary").first.click()  # opens one level: the 3 messages, folded
    first = messages.first.locator(".j-member > details.json").first
    assert first.locator("summary").first.text_content() == "{…} 2 keys"
    first.locator("summary").first.click()
    assert "role: user" in first.text_content()
    # Raw: the span's JSON, and back
    raw = detail.locator("pre.raw")
    assert not raw.is_visible()
    detail.locator("button.raw-btn").click()
    assert raw.is_visible() and not detail.locator(".readable").is_visible()
    span = json.loads(raw.text_content())
    assert span["name"] == "chat gpt-4o-mini" and span["attributes"]["gen_ai.request.model"]
    detail.locator("button.raw-btn").click()
    assert detail.locator(".readable").is_visible() and not raw.is_visible()


def test_a_failed_spans_events_are_listed_apart(page):
    open_thread(page, "failing")
    open_spans(page, 1)
    page.locator(".span-row", has_text="cancel_order").click()
    detail = page.locator(".span-detail")
    assert detail.locator(".msg.error .err-type").text_content() == "ValueError"
    events = detail.locator("ol.events > li")
    assert events.count() == 1 and events.locator("b").text_content() == "exception"
    assert re.match(UTC_TIME, events.locator(".dim").first.text_content())
    assert detail.locator(".llm-slot, .llm").count() == 0  # no LLM call


def test_no_messages_says_what_to_set(page):
    open_thread(page, "quiet")
    hint = page.locator("#d-hint")
    assert hint.is_visible()
    assert "2 LLM calls carry no message content" in hint.text_content()
    assert hint.locator("code").text_content() == f"{CAPTURE}=SPAN_ONLY"
    open_spans(page, 0)  # an LLM span without messages says it too
    page.locator(".span-row").nth(1).click()
    page.locator(".span-detail .llm .hint-box").wait_for()
    assert f"{CAPTURE}=SPAN_ONLY" in page.text_content(".span-detail .hint-box code")
    page.keyboard.press("Escape")
    open_thread(page, "flat")  # OpenLLMetry names its own
    assert page.locator("#d-hint code").text_content() == "TRACELOOP_TRACE_CONTENT=true"
    open_thread(page, "failing")  # a thread with messages: nothing to say
    assert page.locator("#d-hint").is_hidden()
