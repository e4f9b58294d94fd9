"""Finding threads on the web page (issue 15), in a real browser: the search box and its
role, filter chips, cost / user / project columns, every state in the URL (a link
reopens the list, the thread, its turn and the spans view), / and j / k, and an empty
result that says so and clears."""

from __future__ import annotations

import urllib.parse

import test_web
from test_web import ids, open_thread

# the page's fixtures: a collector of 15 threads, a browser, a page on the list
site, browser, page = test_web.site, test_web.browser, test_web.page

ALL = 15


def count_is(page, text: str) -> None:
    page.wait_for_function(
        "t => document.querySelector('#count').textContent === t", arg=text, timeout=15000
    )


def url_params(page) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)


def test_search_messages_by_role_and_clear(page):
    page.fill("#search", "a-1042")  # case-insensitive, in the transcript
    count_is(page, "1\u20131 of 1 threads")
    assert ids(page) == ["support-1"]
    assert url_params(page)["search"] == ["a-1042"]
    page.select_option("#role", "tool")  # only the tool's result says "A-1042: shipped"
    count_is(page, "1\u20131 of 1 threads")
    page.fill("#search", "shipped")
    page.select_option("#role", "user")
    count_is(page, "0\u20130 of 0 threads")
    empty = page.locator("#empty")
    assert empty.is_visible() and "No threads match these filters" in empty.text_content()
    empty.locator("button", has_text="Clear filters").click()
    count_is(page, f"1\u2013{ALL} of {ALL} threads")
    assert page.input_value("#search") == "" and "search" not in url_params(page)


def test_filter_chips_add_remove_and_show_cost_user_project(page):
    page.select_option("#add-filter", "errors")
    count_is(page, "1\u20131 of 1 threads")
    assert ids(page) == ["bulk-03"]
    assert page.locator("#chips .chip").text_content().startswith("has errors")
    page.locator("#chips .chip-x").click()
    count_is(page, f"1\u2013{ALL} of {ALL} threads")
    page.select_option("#add-filter", "model")
    page.fill("#filter-value", "gpt-4o-mini*")
    page.keyboard.press("Enter")
    count_is(page, "1\u20133 of 3 threads")
    assert sorted(ids(page)) == sorted(
        ["support-1", "forked", 'evil"><svg onload="window.__pwned=3">']
    )
    assert url_params(page)["model"] == ["gpt-4o-mini*"]
    page.select_option("#add-filter", "min_turns")
    page.fill("#filter-value", "2")
    page.keyboard.press("Enter")
    count_is(page, "1\u20132 of 2 threads")
    headers = page.eval_on_selector_all("#threads th", "hs => hs.map(h => h.textContent)")
    row = page.locator("#threads tbody tr[data-id=support-1] td")
    cells = dict(zip(headers, row.all_text_contents(), strict=True))
    assert cells["Cost"].startswith("$") and cells["Project"]
    page.click("th[data-sort=cost_usd]")
    page.wait_for_function("() => location.search.includes('sort=cost_usd')")


def test_a_link_reopens_the_thread_its_turn_and_the_spans_view(page, site):
    page.fill("#search", "again")
    count_is(page, "1\u20131 of 1 threads")
    open_thread(page, "forked")
    page.keyboard.press("ArrowRight")
    second = page.evaluate("() => document.querySelector('#d-turns .turn.active').dataset.turn")
    page.wait_for_function(
        "t => new URLSearchParams(location.search).get('turn') === t", arg=second
    )
    link = page.url
    assert url_params(page)["thread"] == ["forked"]
    # a fresh page from the link: the same list, thread and turn
    fresh = page.context.new_page()
    fresh.goto(link)
    fresh.wait_for_function("() => document.querySelector('#d-title')?.textContent === 'forked'")
    fresh.wait_for_function(
        "t => document.querySelector('#d-turns .turn.active')?.dataset.turn === t",
        arg=second,
    )
    assert fresh.input_value("#search") == "again"
    assert ids(fresh) == ["forked"]
    # the spans view of a turn, from a link
    spans = f"{site.endpoints.api}/?thread=forked&spans={second}"
    fresh.goto(spans)
    fresh.wait_for_selector("#d-spans:not([hidden])")
    assert fresh.text_content("#s-title").endswith(" · 2 spans")
    assert fresh.evaluate("() => document.querySelector('#d-turns .turn.active').dataset.turn") == (
        second
    )
    fresh.click("#s-back")  # back to the thread: the link forgets the spans view
    fresh.wait_for_function("() => !new URLSearchParams(location.search).has('spans')")
    fresh.close()


def test_slash_searches_and_j_k_step_through_threads(page):
    page.click("th[data-sort=thread_id]")
    page.wait_for_function(
        "() => document.querySelector('#threads tbody tr')?.dataset.id === 'bulk-01'"
    )
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "search"
    page.keyboard.press("Escape")
    page.evaluate("() => document.activeElement.blur()")
    open_thread(page, "bulk-02")
    page.keyboard.press("j")
    page.wait_for_function("() => document.querySelector('#d-title').textContent === 'bulk-03'")
    page.keyboard.press("k")
    page.keyboard.press("k")
    page.wait_for_function("() => document.querySelector('#d-title').textContent === 'bulk-01'")
    assert url_params(page)["thread"] == ["bulk-01"]


def test_odd_url_parameters_break_nothing(page, site):
    """Names an object inherits (constructor, __proto__) are no filters; the rest applies."""
    page.goto(f"{site.endpoints.api}/?constructor=x&__proto__=y&toString=z&search=A-1042")
    count_is(page, "1\u20131 of 1 threads")
    assert ids(page) == ["support-1"]
    assert page.locator("#chips .chip").count() == 0


def test_a_link_with_errors_1_reads_has_errors(page, site):
    page.goto(f"{site.endpoints.api}/?errors=1")
    count_is(page, "1\u20131 of 1 threads")
    assert page.locator("#chips .chip").text_content().startswith("has errors")


def test_a_thread_of_no_known_cost_shows_a_dash_not_zero(page):
    headers = page.eval_on_selector_all("#threads th", "hs => hs.map(h => h.textContent)")
    row = page.locator("#threads tbody tr[data-id=bulk-02] td")
    cells = dict(zip(headers, row.all_text_contents(), strict=True))
    assert cells["Cost"] == "\u2014"
    assert row.nth(headers.index("Cost")).get_attribute("title") == "no LLM calls"
