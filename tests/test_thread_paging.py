"""GET /threads/{id} in pages, and its change check, over real HTTP; ThreadsClient and
`otel-threads show` paging through a whole thread."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from stored_app import App

from otel_threads import ThreadsClient, thread
from otel_threads import client as client_module
from otel_threads.cli import main as cli
from otel_threads.collector import Collector, Config
from otel_threads.collector.testing import sql
from otel_threads.query import query_thread

ANY = ("127.0.0.1", 0)
TURNS = 25


def llm_turn(app: App, thread_id: str, i: int, previous: str | None = None) -> str:
    """One turn: a span with an LLM call under it, a user question and an answer."""
    with (
        thread(thread_id, previous_turn_id=previous) as t,
        app.tracer.start_as_current_span(f"turn {i}"),
    ):
        with app.tracer.start_as_current_span(
            "chat",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": f"question {i}"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": f"answer {i}"}]}]
                ),
            },
        ):
            pass
    return t.last_turn_id


def _serve(folder):
    """A collector holding ``long`` (25 turns, a question and an answer each) and
    ``forked`` (a turn answered twice, then one more turn on the newer answer)."""
    c = Collector(
        Config(parse_workers=0, db=str(folder / "p.duckdb"), grpc=ANY, http=None, api=ANY)
    )
    c.start()
    app = App()
    for i in range(TURNS):
        llm_turn(app, "long", i)
    first = llm_turn(app, "forked", 0)
    llm_turn(app, "forked", 1, previous=first)
    regenerated = llm_turn(app, "forked", 2, previous=first)
    llm_turn(app, "forked", 3, previous=regenerated)
    app.send(c)
    sql(c, "SELECT 1")
    c.app = app  # type: ignore[attr-defined]
    yield c
    c.stop()


@pytest.fixture
def served(tmp_path):
    yield from _serve(tmp_path)


@pytest.fixture(scope="module")
def served_to_read(tmp_path_factory):
    """`served`, once for the tests that only read."""
    yield from _serve(tmp_path_factory.mktemp("paging"))


def get(c: Collector, path: str, headers: dict[str, str] | None = None):
    req = urllib.request.Request(c.endpoints.api + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def page(c: Collector, path: str) -> dict:
    status, _, body = get(c, path)
    assert status == 200, body
    return json.loads(body)


def texts(answer: dict) -> list[str]:
    return [m["content"] for m in answer["transcript"]]


def test_pages_of_turns_with_their_transcript_totals_and_the_next_page(served):
    first = page(served, "/threads/long?turn_limit=10")
    assert [t["turn_index"] for t in first["turns"]] == list(range(1, 11))
    assert texts(first) == [s for i in range(10) for s in (f"question {i}", f"answer {i}")]
    assert first["branch"] == [t["turn_id"] for t in first["turns"]]
    assert first["thread"]["turn_count"] == TURNS  # the thread row is the whole thread's
    assert first["page"] == {
        "turn_offset": 0,
        "turn_limit": 10,
        "transcript_limit": 5000,
        "turns_total": TURNS,
        "branch_total": TURNS,
        "transcript_total": 2 * TURNS,
        "transcript_after": None,
        "next": {"turn_offset": 10},
        "more": True,
    }
    assert first["truncated"] is True
    assert first["turns"][3]["first_input"] == "question 3"

    second = page(served, "/threads/long?turn_limit=10&turn_offset=10")
    assert [t["turn_index"] for t in second["turns"]] == list(range(11, 21))
    assert texts(second)[0] == "question 10" and len(second["transcript"]) == 20
    assert second["page"]["next"] == {"turn_offset": 20}

    last = page(served, "/threads/long?turn_limit=10&turn_offset=20")
    assert [t["turn_index"] for t in last["turns"]] == list(range(21, 26))
    assert texts(last)[-1] == f"answer {TURNS - 1}"
    assert last["page"]["next"] is None and last["page"]["more"] is False
    assert last["truncated"] is True  # not the whole thread: a page of it

    past = page(served, "/threads/long?turn_offset=99")
    assert past["turns"] == [] and past["transcript"] == [] and past["page"]["more"] is False


def test_by_default_a_small_thread_is_whole_as_before(served):
    whole = page(served, "/threads/long")
    assert len(whole["turns"]) == TURNS and len(whole["transcript"]) == 2 * TURNS
    assert whole["truncated"] is False and whole["page"]["more"] is False
    assert whole["page"]["turn_limit"] == 200
    with served.store.cursor() as con:
        direct = query_thread(con, "long")
    as_json = json.loads(json.dumps(dataclasses.asdict(direct), default=str))
    for key in ("turns", "transcript", "branch", "forks"):
        assert len(whole[key]) == len(as_json[key])
    assert [m["seq"] for m in whole["transcript"]] == [m.seq for m in direct.transcript]
    assert [t["first_input"] for t in whole["turns"]] == [t.first_input for t in direct.turns]


def test_a_page_ends_at_a_turn_when_the_transcript_would_be_too_long(served):
    cut = page(served, "/threads/long?turn_limit=10&transcript_limit=5")
    assert len(cut["turns"]) == 2 and len(cut["transcript"]) == 4  # 3 turns: 6 rows
    assert cut["page"]["next"] == {"turn_offset": 2}
    # one turn with more rows than the limit: cut within, continued after its last seq
    within = page(served, "/threads/long?turn_limit=10&transcript_limit=1")
    assert len(within["turns"]) == 1 and texts(within) == ["question 0"]
    assert within["page"]["next"] == {"turn_offset": 0, "transcript_after": 1}
    rest = page(served, "/threads/long?turn_limit=10&transcript_limit=1&transcript_after=1")
    assert [t["turn_index"] for t in rest["turns"]] == [1] and texts(rest) == ["answer 0"]
    assert rest["page"]["next"] == {"turn_offset": 1}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("turn_offset=-1", "turn_offset must be an integer of at least 0"),
        ("turn_limit=0", "turn_limit must be an integer from 1 to 1000"),
        ("turn_limit=1001", "turn_limit must be an integer from 1 to 1000"),
        ("turn_limit=ten", "turn_limit must be an integer, got 'ten'"),
        ("transcript_limit=0", "transcript_limit must be an integer from 1 to 20000"),
        ("transcript_after=-5", "transcript_after must be an integer of at least 0"),
        ("through_turn=00000000000000ff", "is not a turn of this thread"),
        ("page=2", "unknown parameter(s) ['page']"),
    ],
)
def test_bad_parameters_get_a_400_in_one_line(served_to_read, query, message):
    status, _, body = get(served_to_read, "/threads/long?" + query)
    error = json.loads(body)["error"]
    assert status == 400 and message in error and "\n" not in error, (query, error)
    assert get(served_to_read, "/threads/nope?turn_limit=5")[0] == 404


def test_an_unchanged_thread_is_304_and_a_new_turn_changes_it(served):
    status, headers, body = get(served, "/threads/long?turn_limit=10")
    tag = headers["ETag"]
    assert status == 200 and tag and json.loads(body)["version"]
    status, headers, body = get(served, "/threads/long?turn_limit=10", {"If-None-Match": tag})
    assert (status, body, headers["ETag"]) == (304, b"", tag)
    # another page of the same version is another answer: its own tag
    other = get(served, "/threads/long?turn_limit=10&turn_offset=10")[1]["ETag"]
    assert other != tag
    assert (
        get(served, "/threads/long?turn_limit=10&turn_offset=10", {"If-None-Match": tag})[0] == 200
    )
    list_tag = get(served, "/ui/threads")[1]["ETag"]
    assert get(served, "/ui/threads", {"If-None-Match": list_tag})[0] == 304
    forked_tag = get(served, "/threads/forked")[1]["ETag"]

    app = served.app
    app.memory.clear()
    llm_turn(app, "long", TURNS)
    app.send(served)
    status, headers, body = get(served, "/threads/long?turn_limit=10", {"If-None-Match": tag})
    assert status == 200 and headers["ETag"] != tag
    assert json.loads(body)["page"]["turns_total"] == TURNS + 1
    assert get(served, "/ui/threads", {"If-None-Match": list_tag})[0] == 200
    # another thread did not change
    assert get(served, "/threads/forked", {"If-None-Match": forked_tag})[0] == 304


def test_pages_follow_the_branch_asked_for(served):
    whole = page(served, "/threads/forked")
    assert whole["page"]["turns_total"] == 4 and whole["page"]["branch_total"] == 3
    fork = whole["forks"][0]
    assert fork["parent_turn_index"] == 1 and fork["child_turn_indexes"] == [2, 3]
    older = fork["child_turn_ids"][0]
    first = page(served, f"/threads/forked?through_turn={older}&turn_limit=2")
    assert first["through_turn"] == older and first["page"]["branch_total"] == 2
    assert first["branch"] == [t["turn_id"] for t in first["turns"]]
    assert texts(first) == ["question 0", "answer 0", "question 1", "answer 1"]
    rest = page(served, f"/threads/forked?through_turn={older}&turn_limit=2&turn_offset=2")
    assert rest["branch"] == [] and rest["transcript"] == []  # turns 3, 4: another branch
    assert [t["on_current_branch"] for t in rest["turns"]] == [True, True]
    assert rest["forks"] == first["forks"]  # turn 3 competes in the same fork


def test_the_client_and_show_page_through_a_whole_thread(served, monkeypatch):
    # small pages, so that reading the thread whole takes many (cut within turns too)
    monkeypatch.setattr(client_module, "MAX_TURN_LIMIT", 4)
    monkeypatch.setattr(client_module, "MAX_TRANSCRIPT_LIMIT", 3)
    client = ThreadsClient(served.endpoints.api)
    seen: list[dict] = []
    real = client.thread_page
    monkeypatch.setattr(client, "thread_page", lambda *a, **k: seen.append(k) or real(*a, **k))
    for thread_id in ("long", "forked"):
        seen.clear()
        paged = client.thread(thread_id)
        assert len(seen) >= 3  # pages of at most 4 turns and 3 rows
        with served.store.cursor() as con:
            direct = query_thread(con, thread_id)
        assert paged.thread == direct.thread
        assert paged.turns == direct.turns
        assert paged.transcript == direct.transcript
        assert paged.branch == direct.branch and paged.forks == direct.forks
        assert paged.truncated is False and paged.page is None
    older = direct.forks[0].child_turn_ids[0]
    with served.store.cursor() as con:
        direct = query_thread(con, "forked", older)
    assert client.thread("forked", older).transcript == direct.transcript
    one = client.thread_page("long", turn_offset=3, turn_limit=2)
    assert [t.turn_index for t in one.turns] == [4, 5] and one.page.next == {"turn_offset": 5}
    with pytest.raises(ValueError, match="turn_limit must be"):
        client.thread_page("long", turn_limit=0)
    with pytest.raises(KeyError):
        client.thread_page("nope")

    by_url = CliRunner().invoke(cli, ["show", "long", "--url", served.endpoints.api])
    assert by_url.exit_code == 0, by_url.output
    assert by_url.output.count("── turn ") == TURNS
    assert f"assistant: answer {TURNS - 1}" in by_url.output


def test_a_page_reads_its_thread_alone_and_leaves_the_cursor_as_it_was(served_to_read, monkeypatch):
    """A page reads the thread's transcript rows into a TEMP table the page's views read
    (`thread_only`): one cursor, two threads' pages in turn, each sees its own rows; after
    a page, and after a page that fails half way, the cursor reads the store's rows."""
    from otel_threads import paging

    with served_to_read.store.cursor() as con:
        whole = con.execute("SELECT count(*) FROM transcript_mat").fetchall()[0][0]
        long_ = paging.query_thread_page(con, "long")
        forked = paging.query_thread_page(con, "forked")
        assert {m.thread_id for m in long_.transcript} == {"long"}
        assert len(long_.transcript) == 2 * TURNS
        assert {m.thread_id for m in forked.transcript} == {"forked"}
        assert [t.first_input for t in long_.turns] == [f"question {i}" for i in range(TURNS)]
        assert con.execute("SELECT count(*) FROM transcript_mat").fetchall()[0][0] == whole

        def fails(*args):
            raise RuntimeError("half way")

        monkeypatch.setattr(paging, "fill_errors", fails)
        with pytest.raises(RuntimeError, match="half way"):
            paging.query_thread_page(con, "long")
        assert con.execute("SELECT count(*) FROM transcript_mat").fetchall()[0][0] == whole
        assert not con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
