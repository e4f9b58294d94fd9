"""The web page reads a long thread in pages as they come into view, and its live
refresh downloads nothing while the open thread is unchanged (a real browser)."""

from __future__ import annotations

import pytest
from stored_app import App, sql

from collector import Collector, Config
from otel_threads import thread

ANY = ("127.0.0.1", 0)
TURNS = 650


@pytest.fixture(scope="module")
def long_thread(tmp_path_factory):
    pytest.importorskip("playwright.sync_api")
    c = Collector(Config(db=str(tmp_path_factory.mktemp("paging-web") / "p.duckdb"),
                         grpc=ANY, http=None, api=ANY))
    c.start()
    app = App(first=60_000)
    for i in range(TURNS):
        with thread("long"), app.tracer.start_as_current_span(f"turn {i}"):
            pass
    app.send(c)
    assert sql(c, "SELECT turn_count FROM threads WHERE thread_id = 'long'") == [(TURNS,)]
    yield c
    c.stop()


def test_turns_load_as_they_come_into_view_and_refreshes_are_304(long_thread):
    from test_web import CHROMIUM, sync_api

    answers: list[tuple[int, int]] = []
    count = "() => document.querySelectorAll('#d-turns .turn').length"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("response", lambda r: answers.append(
            (r.status, int(r.headers.get("content-length") or 0)))
            if "/threads/long" in r.url else None)
        page.goto(long_thread.endpoints.api + "/")
        page.locator("#threads tbody tr", has_text="long").first.locator("td").first.click()
        page.wait_for_function(f"() => ({count})() > 0")
        first = page.evaluate(count)
        assert first < TURNS  # what is in view (and a margin), not the whole thread
        last = (f"() => [...document.querySelectorAll('#d-turns .turn .idx')]"
                f".some(e => e.textContent === '#{TURNS}')")
        assert not page.evaluate(last)
        for _ in range(200):  # scroll the turns to the end: the pages there come in
            page.evaluate("() => { const p = document.querySelector('.turns-pane');"
                          " p.scrollTop = p.scrollHeight; }")
            if page.evaluate(last):
                break
            page.wait_for_timeout(100)
        assert page.evaluate(last)
        assert page.evaluate(count) < TURNS  # the pages between were never fetched
        loaded = len(answers)
        assert all(status == 200 for status, _ in answers), answers
        # the refresh every 3 s asks whether the thread changed: 304s, nothing downloaded
        page.wait_for_function(
            "n => performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes('/threads/long')).length >= n",
            arg=loaded + 2, timeout=30_000)
        assert page.evaluate(last)  # what is in view stays
        browser.close()
    refreshes = answers[loaded:]
    assert refreshes and all(a == (304, 0) for a in refreshes), refreshes
