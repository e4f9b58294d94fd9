"""The web page in a real browser (Playwright driving Debian's chromium), against a real
collector fed by the real OTLP exporters and the official OpenAI instrumentation.

Screenshots of each flow are saved under test-artifacts/web/ (or $OTEL_THREADS_ARTIFACTS).
Chromium comes from the system (`apt-get install chromium`, as .ci/run does); no browser
is downloaded. Without it these tests skip locally and fail under CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from stored_app import App

from otel_threads import thread
from otel_threads.collector import Collector, Config
from otel_threads.collector.testing import sql

ANY = ("127.0.0.1", 0)
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("OTEL_THREADS_ARTIFACTS", ROOT / "test-artifacts")) / "web"
CHROMIUM = (
    os.environ.get("OTEL_THREADS_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
HOSTILE_ID = 'evil"><svg onload="window.__pwned=3">'

if not CHROMIUM:
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: .ci/run installs Debian's package", pytrace=False)
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A collector holding: 12 threads of 1-12 turns, a support conversation with a tool
    call, a regenerated turn (a fork), and a thread whose texts are hostile HTML."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    from otel_threads.testing.fakellm import FakeLLM

    db = tmp_path_factory.mktemp("web") / "web.duckdb"
    c = Collector(Config(parse_workers=0, db=str(db), grpc=ANY, http=None, api=ANY))
    c.start()
    saved = {
        k: os.environ.get(k)
        for k in (
            "OTEL_SEMCONV_STABILITY_OPT_IN",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        )
    }
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    app = App()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=app.provider)
    try:
        tracer = app.tracer
        from opentelemetry.trace import Status, StatusCode

        for n in range(1, 13):
            for i in range(n):
                with thread(f"bulk-{n:02d}"), tracer.start_as_current_span(f"step {i}") as sp:
                    if n == 3 and i == 1:  # an error turn
                        sp.set_status(Status(StatusCode.ERROR, "boom"))
        import openai

        tool = {
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
        with FakeLLM() as llm:
            client = openai.OpenAI(base_url=llm.base_url, api_key="x", max_retries=0)
            history = [{"role": "user", "content": "Where is order A-1042?"}]
            with thread("support-1"), tracer.start_as_current_span("handle_message"):
                reply = (
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=history, tools=[tool]
                    )
                    .choices[0]
                    .message
                )
                history.append(reply.model_dump(exclude_none=True))
                history.append(
                    {
                        "role": "tool",
                        "tool_call_id": reply.tool_calls[0].id,
                        "content": "A-1042: shipped",
                    }
                )
                answer = (
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=history, tools=[tool]
                    )
                    .choices[0]
                    .message
                )
                history.append({"role": "assistant", "content": answer.content})
            for text in ("Thanks!", "When will it arrive?", "Bye"):
                with thread("support-1"), tracer.start_as_current_span("handle_message"):
                    history.append({"role": "user", "content": text})
                    reply = client.chat.completions.create(model="gpt-4o-mini", messages=history)
                    history.append(
                        {"role": "assistant", "content": reply.choices[0].message.content}
                    )
            with (
                thread(HOSTILE_ID),
                tracer.start_as_current_span("handle <b>message</b>", attributes={"note": HOSTILE}),
            ):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": HOSTILE}]
                )
            with thread("forked") as t, tracer.start_as_current_span("ask"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
            first = t.last_turn_id
            for _ in range(2):  # an answer, then a "regenerate" of it
                with thread("forked", previous_turn_id=first), tracer.start_as_current_span("ask"):
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}]
                    )
        app.send(c)
        assert sql(c, "SELECT count(*) FROM threads") == [(15,)]
        yield c
    finally:
        instrumentor.uninstrument()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        c.stop()


@pytest.fixture(scope="module")
def browser():
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


def ids(page) -> list[str]:
    return page.eval_on_selector_all("#threads tbody tr", "rows => rows.map(r => r.dataset.id)")


def open_thread(page, thread_id: str) -> None:
    # its id cell: the part of the row an open drawer leaves visible
    page.locator("#threads tbody tr", has_text=thread_id).first.locator("td").first.click()
    page.wait_for_function(
        "id => document.querySelector('#d-title').textContent === id", arg=thread_id
    )


def test_the_list_loads_and_sorts_by_clicking_headers(page):
    assert len(ids(page)) == 15
    assert page.text_content("#count") == "1\u201315 of 15 threads"
    page.click("th[data-sort=turn_count]")
    page.wait_for_function(
        "() => document.querySelector('#threads tbody tr')?.dataset.id === 'bulk-12'"
    )
    assert page.get_attribute("th[data-sort=turn_count]", "aria-sort") == "descending"
    turns = page.eval_on_selector_all(
        "#threads tbody tr td:nth-child(2)", "cells => cells.map(c => Number(c.textContent))"
    )
    assert turns == sorted(turns, reverse=True)
    page.click("th[data-sort=turn_count]")  # again: ascending
    page.wait_for_function(
        "() => document.querySelector('#threads tbody tr td:nth-child(2)')?.textContent === '1'"
    )
    assert page.get_attribute("th[data-sort=turn_count]", "aria-sort") == "ascending"
    page.click("th[data-sort=thread_id]")
    page.wait_for_function(
        "() => document.querySelector('#threads tbody tr')?.dataset.id === 'bulk-01'"
    )
    page.fill("#q", "BULK-1")  # the text filter: case-insensitive, on the thread id
    page.wait_for_function(
        "() => document.querySelector('#count').textContent === '1\u20133 of 3 threads'"
    )
    assert ids(page) == ["bulk-10", "bulk-11", "bulk-12"]


def test_the_drawer_opens_with_turns_and_the_transcript(page):
    open_thread(page, "support-1")
    assert page.is_visible("#drawer")
    assert page.locator("#d-turns .turn").count() == 4
    assert page.locator("#d-chat .turn-sec").count() == 4
    first = page.locator("#d-turns .turn").first
    assert "Where is order A-1042?" in first.text_content()
    assert page.locator("#threads tbody tr.selected").get_attribute("data-id") == "support-1"
    errors = page.locator("#threads tbody tr[data-id=bulk-03] td.err")
    assert errors.text_content() == "1"  # the error column stands out
    open_thread(page, "bulk-03")
    assert page.locator("#d-turns .turn .dot.error").count() == 1
    open_thread(page, "bulk-02")  # turns without messages: an empty section each
    assert page.locator("#d-chat .turn-sec").count() == 2
    assert page.locator("#d-chat .turn-sec .no-msgs").count() == 2
    assert page.locator("#d-chat .msg").count() == 0


def test_the_chat_shows_a_tool_call_and_its_result(page):
    open_thread(page, "support-1")
    call = page.locator("#d-chat .msg.assistant .call").first
    assert "get_order_status" in call.text_content() and "A-1042" in call.text_content()
    result = page.locator("#d-chat .msg.tool").first
    assert "A-1042: shipped" in result.text_content()
    assert "tool result" in result.locator(".role").text_content()
    assert page.locator("#d-chat .msg.user .bubble").first.text_content() == (
        "Where is order A-1042?"
    )


def test_keyboard_steps_through_turns_and_esc_closes(page):
    open_thread(page, "support-1")
    turns = page.eval_on_selector_all("#d-turns .turn", "items => items.map(i => i.dataset.turn)")
    active = "() => document.querySelector('#d-turns .turn.active')?.dataset.turn"
    assert page.evaluate(active) == turns[0]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(active) == turns[2]
    # the chat scrolled to that turn's section
    page.wait_for_function(
        "id => { const c = document.querySelector('#d-chat'); const s = "
        "c.querySelector(`.turn-sec[data-turn='${id}']`); return "
        "Math.abs(s.offsetTop - c.offsetTop - c.scrollTop) < 2; }",
        arg=turns[2],
    )
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(active) == turns[1]
    page.locator("#d-turns .turn").nth(3).click()  # a click selects too
    assert page.evaluate(active) == turns[3]
    page.keyboard.press("Escape")
    assert page.is_hidden("#drawer")


def test_scrolling_the_chat_highlights_the_turn_in_view(page):
    open_thread(page, "support-1")
    turns = page.eval_on_selector_all("#d-turns .turn", "items => items.map(i => i.dataset.turn)")
    page.evaluate(
        "id => { const c = document.querySelector('#d-chat'); const s = "
        "c.querySelector(`.turn-sec[data-turn='${id}']`); "
        "c.scrollTop = s.offsetTop - c.offsetTop + 4; }",
        turns[3],
    )
    page.wait_for_function(
        "id => document.querySelector('#d-turns .turn.active')?.dataset.turn === id", arg=turns[3]
    )


def test_a_turn_opens_its_span_tree_and_goes_back(page):
    open_thread(page, "support-1")
    page.locator("#d-turns .turn").first.locator("button.spans-btn").click()
    page.wait_for_selector("#d-spans:not([hidden]) .span-row")
    names = page.eval_on_selector_all(".span-row .span-name", "n => n.map(x => x.title)")
    assert names == ["handle_message", "chat gpt-4o-mini", "chat gpt-4o-mini"]
    page.locator(".span-row").nth(1).click()  # its attributes
    assert "gen_ai.request.model" in page.text_content(".attrs")
    page.keyboard.press("Escape")  # back to the thread, not closed
    assert page.is_visible("#d-chat") and page.is_visible("#drawer")


def test_forks_are_visible_and_branches_switch(page):
    open_thread(page, "forked")
    assert page.locator("#d-forks .fork").count() == 1
    buttons = page.locator("#d-forks .fork button")
    assert buttons.count() == 2 and "current" in buttons.nth(1).get_attribute("class")
    assert page.locator("#d-turns .turn.off-branch").count() == 1
    buttons.nth(0).click()  # the other branch
    page.wait_for_function(
        "() => document.querySelector('#d-forks .fork button')?.classList.contains('current')"
    )
    assert page.locator("#d-chat .turn-sec").count() == 2


def test_hostile_content_is_shown_as_text_and_never_runs(page):
    open_thread(page, HOSTILE_ID)
    assert page.evaluate("() => window.__pwned") is None
    bubble = page.locator("#d-chat .msg.user .bubble").first
    assert bubble.text_content() == HOSTILE
    assert page.locator("#d-chat img, #d-chat script, #d-title svg").count() == 0
    assert page.text_content("#d-title") == HOSTILE_ID
    page.locator("#d-turns .turn").first.locator("button.spans-btn").click()
    page.wait_for_selector(".span-row")
    page.locator(".span-row").first.click()
    assert HOSTILE in page.text_content(".attrs")
    assert page.evaluate("() => window.__pwned") is None


def test_it_refreshes_while_data_arrives_keeping_scroll_and_selection(browser, tmp_path):
    c = Collector(
        Config(parse_workers=0, db=str(tmp_path / "live.duckdb"), grpc=ANY, http=None, api=ANY)
    )
    c.start()
    try:
        app = App(first=9000)
        for n in range(55):
            with thread(f"live-{n:02d}"), app.tracer.start_as_current_span("step"):
                pass
        app.send(c)
        sql(c, "SELECT 1")
        context = browser.new_context(viewport={"width": 1400, "height": 400})
        page = context.new_page()
        page.goto(c.endpoints.api + "/")
        page.click("th[data-sort=thread_id]")
        page.wait_for_function(
            "() => document.querySelector('#threads tbody tr')?.dataset.id === 'live-00'"
        )
        assert page.text_content("#count") == "1\u201350 of 55 threads"
        page.click("#next")  # pages come from the server: limit and offset
        page.wait_for_function(
            "() => document.querySelector('#count').textContent === '51\u201355 of 55 threads'"
        )
        assert ids(page) == [f"live-{n}" for n in range(50, 55)]
        assert page.is_disabled("#next") and page.is_enabled("#prev")
        page.click("#prev")
        page.wait_for_function(
            "() => document.querySelector('#threads tbody tr')?.dataset.id === 'live-00'"
        )
        page.evaluate("() => { document.querySelector('#list-wrap').scrollTop = 120; }")
        open_thread(page, "live-05")
        with thread("live-05"), app.tracer.start_as_current_span("one more"):
            pass
        with thread("aaa-new"), app.tracer.start_as_current_span("late"):
            pass
        app.send(c, ["one more", "late"])
        # the next refresh shows both, with the scroll position and the selection kept
        page.wait_for_function(
            "() => document.querySelector('#count').textContent === '1\u201350 of 56 threads'",
            timeout=15_000,
        )
        page.wait_for_function(
            "() => document.querySelectorAll('#d-turns .turn').length === 2", timeout=15_000
        )
        assert ids(page)[0] == "aaa-new"
        assert page.evaluate("() => document.querySelector('#list-wrap').scrollTop") == 120
        assert page.locator("#threads tbody tr.selected").get_attribute("data-id") == "live-05"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "test_live_refresh.png"))
        context.close()
    finally:
        c.stop()


def test_light_and_dark_modes_switch_and_stay(page):
    background = "() => getComputedStyle(document.body).backgroundColor"
    start = page.evaluate(background)
    page.click("#theme")
    dark = page.evaluate("() => document.documentElement.dataset.theme")
    assert dark in ("dark", "light") and page.evaluate(background) != start
    page.reload()
    page.wait_for_selector("#threads tbody tr")
    assert page.evaluate("() => document.documentElement.dataset.theme") == dark
    open_thread(page, "support-1")  # the screenshot shows the drawer in that mode


LONG_TURNS = 3000


def test_a_long_thread_loads_in_pages_and_is_not_fetched_again_unchanged(browser, tmp_path):
    """A thread of 3,000 turns: opening it fetches one page (100 turns); scrolling
    fetches the page that comes into view, not those in between; the live refresh asks
    again with the ETag and gets 304s with no body; a new turn changes it, and then only
    pages in view are fetched again."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from test_thread_paging import llm_turn

    c = Collector(
        Config(parse_workers=0, db=str(tmp_path / "long.duckdb"), grpc=ANY, http=None, api=ANY)
    )
    c.start()
    try:
        app = App(first=70_000)
        for i in range(LONG_TURNS):
            llm_turn(app, "long", i)
        llm_turn(app, "short", 0)
        spans = app.spans()
        exporter = OTLPSpanExporter(endpoint=c.endpoints.grpc, insecure=True)
        for at in range(0, len(spans), 1000):
            assert exporter.export(spans[at : at + 1000]).name == "SUCCESS"
        exporter.shutdown()
        assert sql(c, "SELECT turn_count FROM threads WHERE thread_id = 'long'") == [(LONG_TURNS,)]
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        seen: list[tuple[str, int, int]] = []  # (url, status, body bytes), as they come

        def answered(response) -> None:
            if "/threads/long" in response.url or "/ui/threads" in response.url:
                seen.append(
                    (
                        response.url,
                        response.status,
                        int(response.headers.get("content-length") or 0),
                    )
                )

        page.on("response", answered)
        page.goto(c.endpoints.api + "/")
        page.wait_for_selector("#threads tbody tr")
        open_thread(page, "long")
        count = "document.querySelectorAll('#d-turns .turn').length"
        page.wait_for_function(f"() => {count} === 100")
        settled = "() => state.view.loads === 0 && !state.view.refreshing"

        def thread_answers(status: int | None = None, since: int = 0) -> list:
            return [
                s
                for s in seen[since:]
                if "/threads/long?" in s[0] and (status is None or s[1] == status)
            ]

        def offsets() -> list[int]:
            return [
                int(url.split("turn_offset=")[1].split("&")[0]) for url, _, _ in thread_answers(200)
            ]

        def wait_for(predicate, what: str, timeout_s: float = 30) -> None:
            for _ in range(int(timeout_s * 10)):
                if predicate():
                    return
                page.wait_for_timeout(100)
            raise AssertionError(f"waited {timeout_s}s for {what}; answers: {seen}")

        # the live refresh: the page in view, asked again with its ETag, is a 304
        wait_for(lambda: len(thread_answers(304)) >= 2, "two refreshes of the thread")
        loaded = thread_answers(200)
        assert len(loaded) == 1 and "turn_offset=0&turn_limit=100" in loaded[0][0], loaded
        assert all(size == 0 for _, _, size in thread_answers(304))
        # a live refresh reads what is derived now (wait=0); what the user opens waits
        assert all("wait=0" in url for url, _, _ in thread_answers(304))
        assert "wait=" not in loaded[0][0]
        assert page.evaluate(f"() => {count}") == 100
        wait_for(
            lambda: any(s[1] == 304 for s in seen if "/ui/threads" in s[0]),
            "the list's refresh to be a 304",
        )
        assert "wait=" not in next(s[0] for s in seen if "/ui/threads" in s[0])
        assert all("wait=0" in s[0] for s in seen if "/ui/threads" in s[0] and s[1] == 304)

        # scrolling the turns to the end of the first page brings the second
        page.evaluate(
            "() => { const p = document.querySelector('#d-turns').parentElement; "
            "p.scrollTop = document.querySelector('#d-turns .seg').offsetHeight "
            "- p.clientHeight; }"
        )
        page.wait_for_function(f"() => {count} >= 200")
        assert offsets()[:2] == [0, 100]
        # jumping the chat to its middle brings the page there, not those in between
        page.evaluate(
            "() => { const c = document.querySelector('#d-chat'); "
            "c.scrollTop = c.scrollHeight / 2; }"
        )
        wait_for(lambda: any(o >= 1000 for o in offsets()), "the page in the middle")
        page.wait_for_function(settled)
        # the pages near either view (the turns list still shows pages 1-2, and may take
        # the next ones within a screen of it); none of the dozen in between
        middle = [o for o in offsets() if o >= 1000]
        between = [o for o in offsets() if 400 < o < min(middle) - 200]
        assert not between and len(offsets()) <= 8, offsets()
        assert page.evaluate(f"() => {count}") <= 800, offsets()
        bytes_loaded = sum(size for _, _, size in thread_answers(200))

        # nothing changes: refreshes cost 304s only
        before = len(seen)
        wait_for(lambda: len(thread_answers(since=before)) >= 2, "two more refreshes")
        assert {s[1] for s in thread_answers(since=before)} == {304}

        # a new turn: the next refresh sees it; only pages in view are fetched again
        loaded_pages = page.evaluate(
            "() => state.view.segs.filter(s => s.status === 'loaded').length"
        )
        app.memory.clear()
        llm_turn(app, "long", LONG_TURNS)
        app.send(c)
        before = len(seen)
        page.wait_for_function(
            "() => document.querySelector('#d-stats').textContent.includes('turns 3,001')",
            timeout=30_000,
        )
        wait_for(
            lambda: [s[1] for s in thread_answers(since=before)][-2:] == [304, 304],
            "the refreshes to settle",
        )
        again = thread_answers(200, since=before)
        assert 1 <= len(again) < loaded_pages, again
        assert sum(size for _, _, size in again) < bytes_loaded
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "test_long_thread.png"))
        context.close()
    finally:
        c.stop()
