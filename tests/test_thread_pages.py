"""A long thread comes in pages of turns, and an unchanged thread is not sent again:
`GET /threads/{id}` with turn_offset / turn_limit and ETag / If-None-Match, the client
and `show` paging through, and the web page loading more turns on demand while its
refresh gets 304s (a real browser)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from stored_app import App, sql

from collector import Collector, Config
from collector.api import THREAD_PAGE_TURNS
from otel_threads import thread
from otel_threads.client import ThreadsClient

ANY = ("127.0.0.1", 0)
TURNS = 650


@pytest.fixture(scope="module")
def long_thread(tmp_path_factory):
    c = Collector(Config(db=str(tmp_path_factory.mktemp("pages") / "p.duckdb"), grpc=ANY,
                         http=None, api=ANY))
    c.start()
    app = App(first=50_000)
    for i in range(TURNS):
        with thread("long"), app.tracer.start_as_current_span(f"turn {i}"):
            pass
    with thread("short"), app.tracer.start_as_current_span("only"):
        pass
    app.send(c)
    assert sql(c, "SELECT turn_count FROM threads WHERE thread_id = 'long'") == [(TURNS,)]
    yield c, app
    c.stop()


def get(c: Collector, path: str, headers: dict[str, str] | None = None):
    req = urllib.request.Request(c.endpoints.api + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def test_turns_come_in_pages(long_thread):
    c, _ = long_thread
    status, _, body = get(c, "/threads/long")
    page = json.loads(body)
    assert status == 200
    assert len(page["turns"]) == THREAD_PAGE_TURNS < TURNS == page["turns_total"]
    assert page["thread"]["turn_count"] == TURNS
    seen = []
    for offset in range(0, TURNS, 100):
        page = json.loads(get(c, f"/threads/long?turn_offset={offset}&turn_limit=100")[2])
        assert page["turn_offset"] == offset
        assert [t["turn_index"] for t in page["turns"]] == list(
            range(offset + 1, min(offset + 100, TURNS) + 1))
        seen += [t["turn_id"] for t in page["turns"]]
        assert set(page["branch"]) <= {t["turn_id"] for t in page["turns"]}
        assert all(m["turn_id"] in set(page["branch"]) for m in page["transcript"]
                   if m["turn_id"])
    assert len(set(seen)) == TURNS
    assert json.loads(get(c, f"/threads/long?turn_offset={TURNS}")[2])["turns"] == []


@pytest.mark.parametrize("query, message", [
    ("turn_limit=0", "turn_limit must be an integer from 1 to"),
    (f"turn_limit={THREAD_PAGE_TURNS + 1}", "turn_limit must be an integer from 1 to"),
    ("turn_offset=-1", "turn_offset must be an integer from 0"),
    ("turn_offset=x", "turn_offset must be an integer from 0"),
    ("page=2", "unknown parameter(s) ['page']"),
])
def test_bad_paging_is_a_400_saying_what_is_wrong(long_thread, query, message):
    status, _, body = get(long_thread[0], "/threads/long?" + query)
    assert status == 400
    assert message in json.loads(body)["error"]


def test_an_unchanged_thread_is_a_304_and_a_change_is_not(long_thread):
    c, app = long_thread
    status, headers, _ = get(c, "/threads/short?turn_limit=50")
    etag = headers["ETag"]
    assert status == 200 and etag
    status, headers, body = get(c, "/threads/short?turn_limit=50", {"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    # another question is another answer
    assert get(c, "/threads/short?turn_limit=49", {"If-None-Match": etag})[0] == 200
    with thread("short"), app.tracer.start_as_current_span("another"):
        pass
    app.send(c, ["another"])
    sql(c, "SELECT 1")
    status, headers, body = get(c, "/threads/short?turn_limit=50", {"If-None-Match": etag})
    assert status == 200 and headers["ETag"] != etag
    assert len(json.loads(body)["turns"]) == 2


def test_the_client_pages_through_a_long_thread(long_thread):
    c, _ = long_thread
    detail = ThreadsClient(c.endpoints.api).thread("long")
    assert len(detail.turns) == TURNS == detail.turns_total
    assert [t.turn_index for t in detail.turns] == list(range(1, TURNS + 1))
    assert len(detail.branch) == TURNS
    with pytest.raises(KeyError):
        ThreadsClient(c.endpoints.api).thread("nope")


def test_the_page_loads_more_turns_and_its_refresh_downloads_nothing(long_thread):
    from test_web import CHROMIUM, sync_api

    c, _ = long_thread
    answers: list[tuple[int, int]] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("response", lambda r: answers.append(
            (r.status, int(r.headers.get("content-length") or 0)))
            if "/threads/long" in r.url else None)
        page.goto(c.endpoints.api + "/")
        page.locator("#threads tbody tr", has_text="long").first.locator("td").first.click()
        page.wait_for_function("() => document.querySelectorAll('#d-turns .turn').length "
                               "=== 200")
        assert "450 left" in page.text_content("#more-turns")
        for shown in (400, 600, 650):
            page.click("#more-turns")
            page.wait_for_function("n => document.querySelectorAll('#d-turns .turn').length "
                                   "=== n", arg=shown)
        assert page.locator("#more-turns").count() == 0
        loaded = len(answers)
        # refreshes every 3 s ask whether the thread changed: 304s, nothing downloaded
        page.wait_for_function(f"() => window.performance.getEntriesByType('resource')"
                               f".filter(e => e.name.includes('/threads/long')).length "
                               f">= {loaded + 2}", timeout=30_000)
        assert page.locator("#d-turns .turn").count() == 650  # what was loaded stays
        browser.close()
    assert all(status == 200 for status, _ in answers[:loaded]), answers
    refreshes = answers[loaded:]
    assert refreshes and all(a == (304, 0) for a in refreshes), refreshes
