"""Annotations on the web page (issue 16), in a real browser (Playwright driving Debian's
chromium) against a real collector fed over OTLP: thumbs up / down and a note per turn
and per thread, shown beside the turn and stored in the `annotations` view; deleting
from the page; the list's annotations column; a failed write says why on one line;
with --token the page's writes carry it; a page of another origin cannot write.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from stored_app import App
from test_web import (
    ARTIFACTS,
    CHROMIUM,
    HOSTILE,
    HOSTILE_ID,
    sync_api,
)  # skips (fails under CI) without chromium

from otel_threads import ThreadsClient, thread
from otel_threads.collector.testing import running, sql

ANY = ("127.0.0.1", 0)
EVALUATION = "gen_ai.evaluation.result"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def make_threads(c, first: int = 1) -> None:
    """'chat': three turns, the first judged by the app itself over OTLP; 'other': one."""
    app = App(first=first)
    for i in range(3):
        with thread("chat"), app.tracer.start_as_current_span(f"turn {i}") as span:
            if i == 0:
                span.add_event(
                    EVALUATION,
                    {
                        "gen_ai.evaluation.name": "relevance",
                        "gen_ai.evaluation.score.value": 0.75,
                        "gen_ai.evaluation.score.label": "relevant",
                    },
                )
    with thread("other"), app.tracer.start_as_current_span("only"):
        pass
    app.send(c)


@pytest.fixture
def site(tmp_path):
    with running(tmp_path / "a.duckdb", http=None) as c:
        make_threads(c)
        assert sql(c, "SELECT count(*) FROM threads") == [(2,)]
        yield c


def new_page(browser, c, request, on_dialog=None):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    if on_dialog:
        page.on("dialog", on_dialog)
    page.goto(c.endpoints.api + "/")
    page.wait_for_selector("#threads tbody tr")
    return page, errors


@pytest.fixture
def page(browser, site, request):
    page, errors = new_page(browser, site, request)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    page.context.close()
    # a 404 the test provokes is logged by the browser as a failed resource
    assert [e for e in errors if "404" not in e] == [], errors


def turn_ids(c, thread_id: str = "chat") -> list[str]:
    rows = sql(c, "SELECT turn_id FROM turns WHERE thread_id = ? ORDER BY turn_index", thread_id)
    return [r[0] for r in rows]


def stored(c, where: str = "source = 'api'") -> list[tuple]:
    return sql(
        c,
        "SELECT name, label, score, explanation, turn_id, source FROM annotations "
        f"WHERE {where} ORDER BY created_at",
    )


def eventually(c, expected, where: str = "source = 'api'") -> None:
    deadline = time.monotonic() + 30
    while (got := stored(c, where)) != expected:
        assert time.monotonic() < deadline, got
        time.sleep(0.05)


def open_thread(page, thread_id: str) -> None:
    page.locator(f'#threads tbody tr[data-id="{thread_id}"] td').first.click()
    page.wait_for_function(
        "id => document.querySelector('#d-title').textContent === id", arg=thread_id
    )
    page.wait_for_selector("#d-chat .turn-sec .notes")


def notes_of(page, turn_id: str | None):
    if turn_id is None:
        return page.locator("#d-notes .notes")
    return page.locator(f'#d-chat .turn-sec[data-turn="{turn_id}"] .notes')


def items(page, turn_id: str | None) -> list[tuple]:
    """What the page shows of each annotation: (name, label · score, explanation, source,
    whether it has a delete button)."""
    return [
        tuple(x)
        for x in notes_of(page, turn_id).evaluate_all(
            """bars => bars.flatMap((bar) => [...bar.querySelectorAll('.note-item')].map((i) =>
                 [...['.note-name', '.note-val', '.note-expl', '.note-src']
                    .map((s) => i.querySelector(s)?.textContent ?? null),
                  Boolean(i.querySelector('button.note-x'))]))"""
        )
    ]


def shows(page, turn_id: str | None, count: int) -> None:
    sel = (
        "#d-notes .note-item"
        if turn_id is None
        else f'#d-chat .turn-sec[data-turn="{turn_id}"] .note-item'
    )
    page.wait_for_function(
        "([s, n]) => document.querySelectorAll(s).length === n", arg=[sel, count], timeout=30000
    )


def test_thumbs_down_on_a_turn_is_stored_and_shown_beside_it(page, site):
    open_thread(page, "chat")
    turns = turn_ids(site)
    bar = notes_of(page, turns[1])
    bar.locator("button.thumb.down").click()
    eventually(site, [("thumbs", "down", 0.0, None, turns[1], "api")])
    shows(page, turns[1], 1)
    assert items(page, turns[1]) == [("👎 thumbs", "down · score 0", None, "api", True)]
    assert bar.locator("button.thumb.down").get_attribute("aria-pressed") == "true"
    assert "👎 1" in page.locator(f'#d-turns .turn[data-turn="{turns[1]}"]').text_content()
    assert items(page, turns[2]) == [] and items(page, None) == []  # only beside that turn
    # up replaces down: one vote per turn
    bar.locator("button.thumb.up").click()
    eventually(site, [("thumbs", "up", 1.0, None, turns[1], "api")])
    page.wait_for_function(
        "id => document.querySelector(`#d-chat .turn-sec[data-turn='${id}'] .thumb.up`)"
        "?.getAttribute('aria-pressed') === 'true'",
        arg=turns[1],
    )
    # up again takes it back
    bar.locator("button.thumb.up").click()
    eventually(site, [])
    shows(page, turns[1], 0)


def test_a_note_on_the_thread_then_deleted_from_the_page(page, site):
    open_thread(page, "chat")
    bar = notes_of(page, None)
    bar.locator("button.note-btn").click()
    # typing is not the page's keys: j / k would open another thread, Esc close it
    bar.locator("textarea").press_sequentially("jk/")
    bar.locator("textarea").press("Escape")  # closes the form, not the drawer
    assert bar.locator(".note-form").is_hidden() and page.is_visible("#drawer")
    assert page.text_content("#d-title") == "chat"
    bar.locator("button.note-btn").click()
    bar.locator("textarea").fill("Wrong order number\nasked twice")
    bar.locator("button[type=submit]").click()
    eventually(site, [("note", None, None, "Wrong order number\nasked twice", None, "api")])
    shows(page, None, 1)
    assert items(page, None) == [("note", None, "Wrong order number\nasked twice", "api", True)]
    assert bar.locator(".note-form").is_hidden()
    # the list's annotations column counts it (and the app's own evaluation), and sorts
    page.click("#d-close")
    page.wait_for_function(
        "() => document.querySelector('#threads tbody tr[data-id=chat] td:nth-child(11)')"
        "?.textContent === '2'"
    )
    assert page.text_content("#threads th:nth-child(11)") == "Notes"
    page.click("th[data-sort=annotation_count]")
    page.wait_for_function(
        "() => document.querySelector('th[data-sort=annotation_count]')"
        "?.getAttribute('aria-sort') === 'descending'"
    )
    assert page.locator("#threads tbody tr").first.get_attribute("data-id") == "chat"
    page.click("th[data-sort=annotation_count]")
    page.wait_for_function(
        "() => document.querySelector('#threads tbody tr')?.dataset.id === 'other'"
    )
    # a note per turn too, then delete the thread's from the page
    open_thread(page, "chat")
    bar = notes_of(page, None)
    turns = turn_ids(site)
    turn = notes_of(page, turns[2])
    turn.locator("button.note-btn").click()
    turn.locator("textarea").fill("fine")
    turn.locator("textarea").press("Control+Enter")
    eventually(
        site,
        [
            ("note", None, None, "Wrong order number\nasked twice", None, "api"),
            ("note", None, None, "fine", turns[2], "api"),
        ],
    )
    bar.locator(".note-item button.note-x").click()
    eventually(site, [("note", None, None, "fine", turns[2], "api")])
    shows(page, None, 0)
    shows(page, turns[2], 1)


def test_the_thread_is_annotated_after_switching_branches(page, site):
    app = App(first=100)
    with thread("forked") as t, app.tracer.start_as_current_span("ask"):
        pass
    for _ in range(2):  # an answer, then a "regenerate" of it
        with (
            thread("forked", previous_turn_id=t.last_turn_id),
            app.tracer.start_as_current_span("ask"),
        ):
            pass
    app.send(site)
    assert sql(site, "SELECT count(*) FROM threads WHERE thread_id = 'forked'") == [(1,)]
    page.reload()
    page.locator("#live").uncheck()  # what shows it is the page's own reading again
    open_thread(page, "forked")
    page.locator("#d-forks .fork button").nth(0).click()  # the other branch: a new view
    page.wait_for_function(
        "() => document.querySelector('#d-forks .fork button')?.classList.contains('current')"
    )
    notes_of(page, None).locator("button.thumb.up").click()
    eventually(site, [("thumbs", "up", 1.0, None, None, "api")])
    shows(page, None, 1)


def test_a_hostile_note_is_shown_as_text(page, site):
    ThreadsClient(site.endpoints.api).annotate(
        "chat", "note<b>", label=HOSTILE_ID, explanation=HOSTILE
    )
    open_thread(page, "chat")
    shows(page, None, 1)
    assert items(page, None) == [("note<b>", HOSTILE_ID, HOSTILE, "api", True)]
    assert page.locator("#d-notes img, #d-notes script, #d-notes svg, #d-notes b").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_the_apps_own_evaluations_are_shown_and_cannot_be_deleted(page, site):
    open_thread(page, "chat")
    first = turn_ids(site)[0]
    shows(page, first, 1)
    # only what the API made can be deleted here
    assert items(page, first) == [("relevance", "relevant · score 0.75", None, "otlp · app", False)]
    assert "✎ 1" in page.locator(f'#d-turns .turn[data-turn="{first}"]').text_content()


def test_a_failed_write_says_why_on_one_line(page, site):
    page.locator("#live").uncheck()  # no live refresh: the stale delete button stays
    open_thread(page, "chat")
    turns = turn_ids(site)
    notes_of(page, turns[2]).locator("button.thumb.up").click()
    shows(page, turns[2], 1)
    # deleted behind the page's back: its delete button answers 404, said where it was clicked
    client = ThreadsClient(site.endpoints.api)
    (gone,) = sql(site, "SELECT annotation_id FROM annotations WHERE source = 'api'")
    client.delete_annotation(gone[0])
    notes_of(page, turns[2]).locator("button.note-x").click()
    error = notes_of(page, turns[2]).locator(".note-err")
    page.wait_for_function(
        "id => document.querySelector(`#d-chat .turn-sec[data-turn='${id}'] .note-err`)"
        "?.textContent.startsWith('Not deleted: HTTP 404')",
        arg=turns[2],
    )
    assert "\n" not in error.text_content()
    shows(page, turns[2], 0)  # and the thread was read again
    assert error.text_content().startswith("Not deleted: HTTP 404")


def test_an_ended_or_reopened_thread_is_marked(page):
    marks = page.evaluate(
        """() => [{}, {ended: true, ended_at: "2026-12-04T10:00:00Z"},
                  {ended: false, reopened_at: "2026-12-04T11:00:00Z"}]
                 .map((t) => endMark(t)?.textContent ?? null)"""
    )
    assert marks == [None, "ended", "reopened"]
    # rows without those fields (this store's) show neither
    assert page.locator("#threads .badge.ended, #threads .badge.reopened").count() == 0


def test_with_a_token_the_pages_writes_carry_it(browser, tmp_path, request):
    with running(tmp_path / "t.duckdb", http=None, token="s3cret") as c:
        make_threads(c)
        asked: list[str] = []

        def give(dialog):
            asked.append(dialog.message)
            dialog.accept("s3cret")

        page, errors = new_page(browser, c, request, on_dialog=give)
        sent: list[dict] = []
        page.on(
            "request",
            lambda r: sent.append(r.headers) if r.method in ("POST", "DELETE") else None,
        )
        try:
            assert len(asked) == 1  # the list's read asked for it once
            open_thread(page, "chat")
            turn = turn_ids(c)[1]
            notes_of(page, turn).locator("button.thumb.down").click()
            eventually(c, [("thumbs", "down", 0.0, None, turn, "api")])
            shows(page, turn, 1)
            notes_of(page, turn).locator("button.thumb.down").click()  # a DELETE
            eventually(c, [])
            assert len(asked) == 1  # the writes did not ask again: they carried it
            assert [h.get("authorization") for h in sent] == ["Bearer s3cret"] * 2
            # without the token the API refuses the same write
            req = urllib.request.Request(
                c.endpoints.api + "/threads/chat/annotations",
                data=json.dumps({"name": "thumbs", "label": "up", "turn_id": turn}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            err.value.close()  # (its socket: left open, a ResourceWarning fails a later test)
            assert err.value.code == 401
            assert stored(c) == []
            # a page that has lost the token asks for it on a write, and goes on
            page.evaluate("() => sessionStorage.clear()")
            notes_of(page, turn).locator("button.thumb.up").click()
            eventually(c, [("thumbs", "up", 1.0, None, turn, "api")])
            assert len(asked) == 2
        finally:
            page.context.close()
        assert [e for e in errors if "401" not in e] == [], errors


ATTACK = """<!doctype html><html><body><script>
const API = %s;
const body = JSON.stringify({name: "thumbs", label: "down", score: 0});
const done = (what, how) => { window.results[what] = how; };
window.results = {};
// a CORS request: JSON needs the API's leave first (a preflight it never gives)
fetch(API + "/threads/chat/annotations", {
  method: "POST", headers: {"Content-Type": "application/json"}, body,
}).then((r) => done("cors", r.status), (e) => done("cors", "blocked: " + e.name));
// a "simple" request the browser sends without asking: it cannot read the answer
fetch(API + "/threads/chat/annotations", {
  method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body,
}).then((r) => done("no-cors", r.type), (e) => done("no-cors", "blocked: " + e.name));
fetch(API + "/annotations/%s", {method: "DELETE"})
  .then((r) => done("delete", r.status), (e) => done("delete", "blocked: " + e.name));
</script></body></html>"""


def test_a_page_of_another_origin_cannot_annotate(browser, site, request):
    # an annotation to delete, made by a client that is not a browser
    client = ThreadsClient(site.endpoints.api)
    keep = client.annotate("chat", "note", explanation="keep me")
    page_html = (ATTACK % (json.dumps(site.endpoints.api), keep)).encode()

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page_html)))
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    context = browser.new_context()
    try:
        page = context.new_page()
        answers: list[tuple[str, int]] = []
        page.on(
            "response",
            lambda r: (
                answers.append((r.request.method, r.status))
                if r.url.startswith(site.endpoints.api)
                else None
            ),
        )
        origin = f"http://127.0.0.1:{other.server_address[1]}"
        assert origin != site.endpoints.api  # another port: another origin
        page.goto(origin + "/")
        page.wait_for_function("() => Object.keys(window.results).length === 3", timeout=30000)
        results = page.evaluate("() => window.results")
        assert results["cors"] == "blocked: TypeError"  # the browser never sent the POST
        assert results["delete"] == "blocked: TypeError"
        assert results["no-cors"] == "opaque"  # sent, and the answer hidden from the page
        # what the API answered to the one it got: 403, not the 415 of a wrong body
        assert ("POST", 403) in answers, answers
        assert all(status == 403 for _, status in answers), answers
    finally:
        context.close()
        other.shutdown()
        other.server_close()
    assert stored(site) == [("note", None, None, "keep me", None, "api")]
