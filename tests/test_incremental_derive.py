"""Derivation is incremental inside a thread (issue 14): a new turn of a long thread is
derived from its own trace, the thread's earlier turns and messages read back narrow
from the derived tables; data late or out of order still gives the rows of a derivation
from scratch, long threads included."""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics

from stored_app import kept_sql
from test_derive_bounds import T0, Store, _kv, span

from otel_threads.query import query_thread
from otel_threads.store import shared_views

SYSTEM = "You are a helpful assistant."
END = "otel_threads.thread_ended"


def chat_turn(
    i: int,
    thread_id: str,
    inputs: list[tuple[str, str]],
    answer: str,
    *,
    at: int | None = None,
    previous: int | None = None,
) -> list[dict]:
    """Turn ``i`` of ``thread_id``, its own trace (ids from ``i``), started at minute
    ``at`` (default ``i``): a turn span and one LLM call of ``inputs`` ((role, text)) that
    answers ``answer``; ``previous`` names turn ``previous`` as the one it answers."""
    trace, turn = 7000 + i, 16 * (7000 + i)
    start = T0 + (i if at is None else at) * 60 * 10**9
    attrs: dict = {
        "gen_ai.conversation.id": thread_id,
        "otel_threads.is_turn": True,
        "user.id": f"user-{i % 2}",
    }
    if previous is not None:
        attrs["otel_threads.previous_turn_id"] = format(16 * (7000 + previous), "016x")
    messages = [{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in inputs]
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": answer}],
            "finish_reason": "stop",
        }
    ]
    call = {
        "gen_ai.conversation.id": thread_id,
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": f"model-{i % 3}",
        "gen_ai.input.messages": json.dumps(messages),
        "gen_ai.output.messages": json.dumps(output),
    }
    return [
        span(trace, turn, "handle_message", start, attrs),
        span(trace, turn + 1, "chat", start + 10**6, call, parent=turn),
    ]


def scope_sizes(store: Store) -> list[tuple[int, int]]:
    """Wraps the store's deriver: (spans, messages) in scope each time a refresh derives
    the rows of its threads."""
    seen: list[tuple[int, int]] = []
    derive = store.deriver._derive_threads

    def watch(traces, touched, old, renewed):
        derive(traces, touched, old, renewed)
        seen.append(
            (
                store.rows("SELECT count(*) FROM temp.spans_raw")[0][0],
                store.rows("SELECT count(*) FROM temp.messages")[0][0],
            )
        )

    store.deriver._derive_threads = watch
    return seen


def test_a_new_turn_of_a_long_thread_reads_only_its_own_trace(tmp_path):
    """Turn 301 of a 300-turn thread: the refresh holds that turn's 2 spans and 2
    messages, not the thread's 600 and 600; the thread's rows are still whole."""
    store = Store(tmp_path / "s.duckdb")
    for i in range(300):  # stateless: each call holds the system prompt and the question
        store.insert(chat_turn(i, "long", [("system", SYSTEM), ("user", f"q{i}")], f"a{i}"))
    store.derive_all()
    seen = scope_sizes(store)
    store.insert(chat_turn(300, "long", [("system", SYSTEM), ("user", "q300")], "a300"))
    store.derive_all()
    assert seen == [(2, 3)]  # the turn span and its call; system, question, answer
    assert store.rows("SELECT turn_count, span_count, llm_call_count FROM threads") == [
        (301, 602, 301)
    ]
    assert store.rows("SELECT turn_index, user_id, models FROM turns ORDER BY turn_index DESC")[
        0
    ] == (301, "user-0", ["model-0"])
    assert store.rows("SELECT user_id, models FROM threads") == [
        ("user-0", ["model-0", "model-1", "model-2"])
    ]
    detail = query_thread(store.con, "long")
    assert [(m.role, m.content) for m in detail.transcript][:2] == [
        ("system", SYSTEM),
        ("user", "q0"),
    ]
    assert [(m.role, m.content) for m in detail.transcript][-2:] == [
        ("user", "q300"),
        ("assistant", "a300"),
    ]
    assert len(detail.transcript) == 1 + 2 * 301  # the system prompt shows once
    store.assert_kept_equals_scratch()


def test_a_late_turn_moves_hides_and_shows_the_later_rows_as_from_scratch(tmp_path, monkeypatch):
    """A turn that arrives late, earlier in time than a turn already derived, changes
    that turn's rows: they move down (seq), a question the late one already asked
    becomes history, and the system prompt it changed shows again after it. The rows are
    those of a derivation from scratch, the text shown again parsed anew (a chunk per
    call)."""
    monkeypatch.setattr(shared_views, "PARSE_CHUNK_BYTES", 8 << 10)  # a chunk per big call
    big = "x" * (5 << 10)
    store = Store(tmp_path / "s.duckdb")
    shown_again: list[list[str]] = []
    add = store.deriver._add_to_scope

    def watch(traces):
        shown_again.append(traces)
        add(traces)

    store.deriver._add_to_scope = watch
    store.insert(chat_turn(0, "t", [("system", SYSTEM), ("user", "hello")], "hi"))
    # minute 4: the same system prompt; its question repeats the one of minute 2
    asked = [("system", SYSTEM), ("user", "same question " + big), ("user", "new question")]
    store.insert(chat_turn(2, "t", asked, "b", at=4))
    store.derive_all()
    before = [(m.role, m.content[:13]) for m in query_thread(store.con, "t").transcript]
    assert before == [
        ("system", SYSTEM[:13]),
        ("user", "hello"),
        ("assistant", "hi"),
        ("user", "same question"),
        ("user", "new question"),
        ("assistant", "b"),
    ]
    # minute 2, late: another system prompt, and the question turn 2 asks again
    store.insert(
        chat_turn(1, "t", [("system", "Be brief."), ("user", "same question " + big)], "a", at=2)
    )
    store.derive_all()
    after = [(m.role, m.content[:13]) for m in query_thread(store.con, "t").transcript]
    assert after == [
        ("system", SYSTEM[:13]),
        ("user", "hello"),
        ("assistant", "hi"),
        ("system", "Be brief."),
        ("user", "same question"),
        ("assistant", "a"),
        ("system", SYSTEM[:13]),  # changed back: shown again (turn 2's, read again)
        ("user", "new question"),  # (turn 2's first question is history now)
        ("assistant", "b"),
    ]
    assert shown_again == [[format(7002, "032x")]]
    store.assert_kept_equals_scratch()


def test_a_long_thread_in_shuffled_batches_with_forks_derives_as_from_scratch(tmp_path):
    """200 turns of a thread that replays its history (each call holds the conversation
    so far), with regenerated turns (forks) and links, delivered in shuffled batches of
    one to twenty turns, each batch derived before the next arrives: after every other
    batch, and the last, the kept rows are those of a derivation from scratch."""
    rnd = random.Random(14)
    turns: list[list[dict]] = []
    history: list[tuple[str, str]] = [("system", SYSTEM)]
    parent = None
    for i in range(200):
        question = f"question {i}" if i % 17 else "yes"  # a repeated message, now and then
        inputs = [*history, ("user", question)]
        fork = i % 23 == 22  # a regenerated turn: answers the turn before the last again
        previous = parent if fork else (i - 1 if i else None)
        turns.append(chat_turn(i, "hist", inputs, f"answer {i}", previous=previous))
        if not fork:
            history = [*inputs, ("assistant", f"answer {i}")]
            parent = i - 1 if i else None
    order = list(range(200))
    rnd.shuffle(order)
    store = Store(tmp_path / "s.duckdb")
    batches = 0
    while order:
        k = rnd.randint(1, 20)
        batch, order = order[:k], order[k:]
        for i in batch:
            store.insert(turns[i])
        store.derive_all()
        batches += 1
        if batches % 2 or not order:  # (from scratch costs: every other batch, and the last)
            store.assert_kept_equals_scratch()
    assert store.rows("SELECT turn_count, fork_count > 0 FROM threads") == [(200, True)]


def test_an_upgrade_derives_anew_behind_ingest_a_batch_at_a_time(tmp_path):
    """Derived tables made by other SQL (an upgrade) are derived anew from the queue: a
    plain connect works it off before it returns; a Store opens at once and its
    derivation works it off behind ingest (here held back while the writer is busy),
    a bounded batch at a time, into the rows of a derivation from scratch."""
    from otel_threads.store import connect
    from otel_threads.store.store import Store as FileStore

    path = tmp_path / "s.duckdb"
    store = Store(path)
    for i in range(30):
        store.insert(chat_turn(i, f"t{i % 3}", [("user", f"q{i}")], f"a{i}"))
    store.derive_all()
    before = {v: store.rows(kept_sql(v)) for v in ("turns", "threads")}
    mark = "UPDATE otel_threads_derived SET version = 'other' WHERE name LIKE '%_mat'"
    store.con.execute(mark)
    store.con.close()

    con = connect(str(path))  # works the queue off before it returns
    assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
    for view, rows in before.items():
        assert con.execute(kept_sql(view)).fetchall() == rows
    con.execute(mark)
    con.close()

    busy = [True]
    opened = FileStore(str(path), derive_max_lag_s=3600)
    opened.attach(
        busy=lambda: busy[0],
        drain=lambda timeout: True,
        wake=lambda: None,
        on_open=lambda con: None,
    )
    opened.open()
    try:
        with opened.cursor() as cur:  # open returned with everything queued, nothing derived
            assert cur.execute("SELECT count(*) FROM derive_queue").fetchall() == [(30,)]
            assert cur.execute("SELECT count(*) FROM turns_mat").fetchall() == [(0,)]
        busy[0] = False
        assert opened.sync(60)
        with opened.cursor() as cur:
            for view, rows in before.items():
                assert cur.execute(kept_sql(view)).fetchall() == rows
            for view in ("span_threads", "message_keys", "thread_attributes", "transcript"):
                assert (
                    cur.execute(kept_sql(view)).fetchall()
                    == cur.execute(f"SELECT * FROM derive_{view} ORDER BY ALL").fetchall()
                )
    finally:
        opened.close()


def test_a_growing_thread_keeps_exact_totals_and_percentiles(tmp_path):
    """A thread that only grows, a turn per refresh (each derived from its tail and merged
    with the thread's row): its costs summed exactly (not as the doubles of each refresh
    add up), its tokens, models and percentiles over turns of different lengths, its
    unpriced calls, as a derivation from scratch gives them."""
    store = Store(tmp_path / "s.duckdb")
    for i in range(14):
        turn, call = chat_turn(i, "priced", [("user", f"q{i}")], f"a{i}")
        turn["endTimeUnixNano"] = str(int(turn["startTimeUnixNano"]) + (i * 37 % 11 + 1) * 10**6)
        if i % 5 != 4:  # (every fifth call has no cost)
            call["attributes"] += [
                _kv("gen_ai.usage.input_tokens", 1000 + i),
                _kv("gen_ai.usage.output_tokens", 7 * i),
                _kv("gen_ai.usage.cost", 0.1 + i / 3),
            ]
        store.insert([turn, call])
        store.derive_all()
    store.assert_kept_equals_scratch()
    ((cost, unpriced, tokens, p50, models),) = store.rows(
        "SELECT cost_usd, unpriced_call_count, input_tokens, p50_turn_duration_ms, models "
        "FROM threads WHERE thread_id = 'priced'"
    )
    assert (unpriced, tokens, models) == (
        2,
        sum(1000 + i for i in range(14) if i % 5 != 4),
        ["model-0", "model-1", "model-2"],
    )
    costs = "SELECT 0.1 + i / 3 AS c FROM range(14) t(i) WHERE i % 5 <> 4"
    assert cost == store.rows(f"SELECT sum(c::DECIMAL(38, 12))::DOUBLE FROM ({costs})")[0][0]
    assert p50 == statistics.median((i * 37 % 11 + 1) for i in range(14))


def test_a_store_from_before_thread_tails_fills_them_without_deriving_anew(tmp_path):
    """A store from before thread_tails_mat (migration 0017) gets its rows from the
    other derived tables as they are when it opens, without queueing a trace again:
    the rows a derivation from scratch gives, for a thread that only grew, a thread with
    a link and a regenerated turn, and a thread with a span in no turn."""
    from otel_threads.store import connect

    path = tmp_path / "s.duckdb"
    store = Store(path)
    for i in range(6):
        store.insert(chat_turn(i, "grows", [("user", f"q{i}")], f"a{i}"))
    store.insert(chat_turn(10, "forked", [("user", "q10")], "a10"))
    store.insert(chat_turn(11, "forked", [("user", "q11")], "a11", previous=10))
    store.insert(chat_turn(12, "forked", [("user", "q11")], "a12", previous=10))
    poll = {"gen_ai.conversation.id": "loose", "otel_threads.is_turn": False}
    store.insert([span(7999, 16 * 7999, "poll", T0, poll)])
    store.derive_all()
    for i in (20, 21):  # (turns after a span in no turn: derived from the thread's tail)
        store.insert(chat_turn(i, "loose", [("user", f"q{i}")], f"a{i}"))
        store.derive_all()
    store.assert_kept_equals_scratch()
    want = store.rows("SELECT * FROM thread_tails_mat ORDER BY ALL")
    by_thread = {r[0]: r for r in want}
    assert by_thread["forked"][3] is True and by_thread["grows"][3] is False  # linked
    assert by_thread["loose"][7] == 1  # its span in no turn
    assert by_thread["grows"][1]["t"] == format(16 * 7005, "016x")  # the last turn
    store.con.execute("DROP TABLE thread_tails_mat")
    store.con.execute("DELETE FROM otel_threads_derived WHERE name = 'thread_tails_mat'")
    store.con.execute("DELETE FROM otel_threads_migrations WHERE version IN (17, 22)")
    store.con.close()

    con = connect(str(path), derive_now=False)
    try:
        assert con.execute("SELECT count(*) FROM derive_queue").fetchall() == [(0,)]
        assert con.execute("SELECT * FROM thread_tails_mat ORDER BY ALL").fetchall() == want
    finally:
        con.close()


def test_a_new_trace_is_read_between_its_commits_and_an_old_one_whole(tmp_path):
    """A trace never derived is read between the first and the last commit that queued it
    (its spans in two commits with another between them, both found); a trace derived
    before that gets a late span is read whole: the rows are those of a derivation from
    scratch."""
    store = Store(tmp_path / "s.duckdb")
    store.insert(chat_turn(0, "a", [("user", "q0")], "a0"))  # derived first, alone
    store.derive_all()
    turn = chat_turn(1, "a", [("user", "q1")], "a1")
    root, call = turn
    late = span(7000, 16 * 7000 + 9, "late step", T0 + 10**6, {}, parent=16 * 7000)
    store.insert([call])  # turn 1 in two commits, its root last; a late span for turn 0
    store.insert([late])
    store.insert([root])
    scopes = []
    scope = store.deriver._scope

    def watch(traces, ranges):
        old = scope(traces, ranges)
        scopes.append((len(traces), old, store.rows("SELECT count(*) FROM temp.spans_raw")[0][0]))
        return old

    store.deriver._scope = watch
    store.derive_all()
    assert scopes == [(2, [format(7000, "032x")], 5)]  # turn 0's 3 spans, turn 1's 2
    assert store.rows("SELECT turn_index, span_count FROM turns ORDER BY 1") == [(1, 3), (2, 2)]
    store.assert_kept_equals_scratch()


def tool_turn(i: int, thread_id: str, history: list[tuple[str, str]], question: str) -> list[dict]:
    """Turn ``i``: a tool loop, two LLM calls in one trace (the question, a tool call;
    then the tool's result and the answer), each call holding ``history`` first."""
    trace, turn = 7000 + i, 16 * (7000 + i)
    start = T0 + i * 60 * 10**9
    text = [{"type": "text", "content": question}]
    asked = [*({"role": r, "parts": [{"type": "text", "content": t}]} for r, t in history)]
    asked.append({"role": "user", "parts": text})
    tool_call = {"type": "tool_call", "id": f"c{i}", "name": "lookup", "arguments": {"n": i}}
    call_msg = {"role": "assistant", "parts": [tool_call]}
    result = {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": f"c{i}", "response": "found"}],
    }
    answer = {"role": "assistant", "parts": [{"type": "text", "content": f"done {i}"}]}

    def call(k: int, inputs: list, output: dict) -> dict:
        attrs = {
            "gen_ai.conversation.id": thread_id,
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.input.messages": json.dumps(inputs),
            "gen_ai.output.messages": json.dumps([output]),
        }
        return span(trace, turn + 1 + k, "chat", start + (1 + k) * 10**6, attrs, parent=turn)

    root = {"gen_ai.conversation.id": thread_id, "otel_threads.is_turn": True}
    return [
        span(trace, turn, "handle_message", start, root),
        call(0, asked, call_msg),
        call(1, [*asked, call_msg, result], answer),
    ]


def test_a_thread_that_only_grows_is_derived_from_its_tail_as_from_scratch(tmp_path):
    """Turns that arrive in order, each derived before the next, are derived from the
    thread's tail (its new turns and calls, the turn and call before them, and how often
    each of their messages was held before): the thread's earlier rows are neither read
    whole nor rewritten, and the kept rows are those of a derivation from scratch (checked
    at every kind of turn), through replayed history, a repeated "yes", a changed system prompt, a
    stateless turn that only replays, a message held by an earlier call but not the last
    one, tool loops, and a link or a late turn (those derive whole)."""
    store = Store(tmp_path / "s.duckdb")
    tails = store.deriver._tails
    taken: list[int] = []

    def watch(candidates):
        found = tails(candidates)
        taken.append(len(found))
        return found

    store.deriver._tails = watch
    history: list[tuple[str, str]] = [("system", SYSTEM)]
    for i in range(40):
        if i % 9 == 4:
            turn = tool_turn(i, "t", history, f"look up {i}")
            history = [*history, ("user", f"look up {i}"), ("assistant", f"done {i}")]
        elif i % 9 == 7:  # stateless: the turn replays the history and asks nothing new
            turn = chat_turn(i, "t", list(history), f"again {i}")
        elif i == 30:  # quotes a reply of turn 7, which no call since held: not new
            turn = chat_turn(i, "t", [*history, ("assistant", "again 7"), ("user", "so?")], "x")
        else:
            question = "yes" if i % 5 == 2 else f"question {i}"
            if i == 20:  # the system prompt changes, then changes back
                history = [("system", "Be brief."), *history[1:]]
            if i == 23:
                history = [("system", SYSTEM), *history[1:]]
            inputs = [*history, ("user", question)]
            turn = chat_turn(i, "t", inputs, f"answer {i}")
            history = [*inputs, ("assistant", f"answer {i}")]
        store.insert(turn)
        store.derive_all()
        # (from scratch costs: at each kind of turn, and every ninth one between; a kept
        # row derived wrong stays wrong, so the next comparison finds it)
        if i % 9 in (0, 4, 7) or i in (20, 23, 30, 39):
            store.assert_kept_equals_scratch()
    assert taken == [1] * 40  # (a new thread's first turn too: nothing before it)
    # a turn that links to an earlier one, and a late turn: the thread derives whole
    for turn in (
        chat_turn(40, "t", [("user", "again")], "a", previous=38),
        chat_turn(41, "t", [("user", "late")], "b", at=3),
        chat_turn(42, "t", [("user", "after")], "c"),
    ):
        taken.clear()
        store.insert(turn)
        store.derive_all()
        store.assert_kept_equals_scratch()
        assert taken in ([0], [])
    assert store.rows("SELECT turn_count FROM threads") == [(43,)]


def test_traces_queued_before_the_last_commit_was_recorded_derive(tmp_path):
    """Queue rows from before migration 0012 name no last commit: such a new trace is
    read from its first commit on, and derives as from scratch."""
    store = Store(tmp_path / "s.duckdb")
    store.insert(chat_turn(0, "a", [("user", "q0")], "a0"))
    store.insert(chat_turn(1, "a", [("user", "q1")], "a1"))
    store.con.execute(
        "UPDATE derive_queue SET last_seq = NULL WHERE trace_id = ?", [format(7000, "032x")]
    )
    store.derive_all()
    assert store.rows("SELECT turn_index, span_count FROM turns ORDER BY 1") == [(1, 2), (2, 2)]
    store.assert_kept_equals_scratch()


def ended(spans: list[dict], value: object = True, *, on: int = 0) -> list[dict]:
    """``spans`` with the end mark (``otel_threads.thread_ended``) on span ``on``."""
    marked = dict(spans[on], attributes=[*spans[on]["attributes"], _kv(END, value)])
    return [*spans[:on], marked, *spans[on + 1 :]]


def end_marker(i: int) -> list[dict]:
    """The end marker of turn ``i`` (what thread(..., end=True) adds after the turn ended):
    a zero-length child of its turn span, in its trace, carrying no thread id."""
    trace, turn = 7000 + i, 16 * (7000 + i)
    at = T0 + i * 60 * 10**9 + 30 * 10**9
    marker = span(trace, turn + 9, "otel_threads.thread_end", at, {END: True}, parent=turn)
    return [dict(marker, endTimeUnixNano=str(at))]


def test_a_long_thread_that_ends_and_reopens_derives_as_from_scratch(tmp_path):
    """A thread that grows a turn at a time (derived from its tail), ends (the mark on a
    child span, on the turn span as the string "true", or a marker arriving after its
    turn was derived), gets new turns (reopened), and ends again: after every step the
    kept rows are those of a derivation from scratch, and threads says ended, ended_at and
    reopened_at as turns.ended_at has them."""
    store = Store(tmp_path / "s.duckdb")
    tails = store.deriver._tails
    taken: list[int] = []

    def watch(candidates):
        found = tails(candidates)
        taken.append(len(found))
        return found

    store.deriver._tails = watch

    def minute(i: int, seconds: int = 0):
        return dt.datetime.fromtimestamp(T0 / 1e9 + i * 60 + seconds, dt.UTC).replace(tzinfo=None)

    def state():
        return store.rows("SELECT turn_count, ended, ended_at, reopened_at FROM threads")[0]

    for i in range(40):
        turn = chat_turn(i, "t", [("user", f"q{i}")], f"a{i}")
        if i == 10:
            turn = ended(turn, on=1)  # end() inside the turn: its LLM span got the mark
        elif i == 25:
            turn = ended(turn, "true")  # another producer: the string, on the turn span
        store.insert(turn)
        store.derive_all()
        if i in (0, 9, 10, 11, 12, 24, 25, 26, 39):  # (from scratch costs: around the ends)
            store.assert_kept_equals_scratch()
        if i == 10:
            assert state() == (11, True, minute(10) + dt.timedelta(microseconds=1001), None)
        elif 10 < i < 25:
            assert state() == (i + 1, False, None, minute(11))
        elif i == 25:
            assert state() == (26, True, minute(25) + dt.timedelta(microseconds=1), None)
        elif i > 25:
            assert state() == (i + 1, False, None, minute(26))
    assert taken.count(1) == 40  # each turn, marked or not, derived from the thread's tail
    # a marker of turn 33 arrives late: the latest end is turn 33's, reopened by turn 34
    store.insert(end_marker(33))
    store.derive_all()
    store.assert_kept_equals_scratch()
    assert state() == (40, False, None, minute(34))
    # the last turn's marker: ended again (span_count of that turn grows, turn_count not)
    store.insert(end_marker(39))
    store.derive_all()
    store.assert_kept_equals_scratch()
    assert state() == (40, True, minute(39, 30), None)
    assert store.rows(
        "SELECT turn_index, ended_at FROM turns WHERE ended_at IS NOT NULL ORDER BY 1"
    ) == [
        (11, minute(10) + dt.timedelta(microseconds=1001)),
        (26, minute(25) + dt.timedelta(microseconds=1)),
        (34, minute(33, 30)),
        (40, minute(39, 30)),
    ]
    # a new turn after that: reopened at its start
    store.insert(chat_turn(40, "t", [("user", "back")], "again"))
    store.derive_all()
    store.assert_kept_equals_scratch()
    assert state() == (41, False, None, minute(40))


def test_a_turn_across_traces_derived_apart_takes_in_its_other_traces(tmp_path):
    """A turn whose spans are in several traces (work it handed to another trace names
    the turn by otel_threads.turn_id): whichever trace comes last, its refresh reads the
    turn's spans in the traces derived before, so the turn counts all of them, as a
    derivation from scratch does; a new turn of one trace reads no other trace."""
    turn_start = T0 + 60 * 10**9

    def turn_trace() -> list[dict]:
        return chat_turn(1, "t", [("user", "hello")], "hi")  # trace 7001, turn 16 * 7001

    def handed(trace: int, minute: int) -> list[dict]:
        """A span of its own trace that names turn 1 (and its thread)."""
        return [
            span(
                trace,
                trace * 16,
                "background_job",
                turn_start + minute * 10**9,
                {"otel_threads.turn_id": format(16 * 7001, "016x"), "gen_ai.conversation.id": "t"},
            )
        ]

    def turn_spans(store: Store) -> list[tuple]:
        return store.rows(
            "SELECT turn_id, span_count FROM turns WHERE thread_id = 't' ORDER BY turn_index"
        )

    turn = format(16 * 7001, "016x")
    for order in ("turn first", "turn last"):
        store = Store(tmp_path / f"{order}.duckdb")
        reached = []
        find = store.deriver._reached

        def watch(pairs, find=find, reached=reached):
            found = find(pairs)
            reached.append(sorted({trace for trace, _ in found}))
            return found

        store.deriver._reached = watch
        store.insert(chat_turn(0, "t", [("user", "hi there")], "hello"))
        store.derive_all()
        batches = [turn_trace(), handed(8001, 5), handed(8002, 9)]
        if order == "turn last":
            batches.reverse()
        for batch in batches:
            store.insert(batch)
            store.derive_all()
        assert turn_spans(store)[-1] == (turn, 4), order  # its 2 spans and the 2 handed
        store.assert_kept_equals_scratch()
        # turn 0, then the first trace of turn 1: new turns, nothing derived before to
        # find; each later trace of turn 1 finds those derived before and its own
        assert reached[:2] == [[], []], order
        assert [len(r) for r in reached[2:]] == [2, 3], (order, reached)
        # a new turn of one trace reaches no other
        store.insert(chat_turn(2, "t", [("user", "again")], "ok"))
        store.derive_all()
        assert reached[-1] == [], order


def test_a_tail_counts_earlier_copies_of_its_keys_from_its_first_call_on(tmp_path):
    """A thread derived from its tail counts the earlier copies of its new messages' keys
    in the rows of message_keys_mat numbered from its first LLM call on (its row of
    thread_tails_mat keeps that number, as a derivation from scratch gives it): a row
    numbered before is not read, so the read follows the thread's age, not the store."""
    store = Store(tmp_path / "s.duckdb")
    store.insert(chat_turn(0, "other", [("user", "q4")], "a0"))  # numbered first
    for i in range(1, 4):
        store.insert(chat_turn(i, "t", [("system", SYSTEM), ("user", f"q{i}")], f"a{i}"))
    store.derive_all()
    store.assert_kept_equals_scratch()
    numbers = dict(store.rows("SELECT trace_id, trace_n FROM trace_numbers"))
    first = numbers[format(7001, "032x")]
    assert first > numbers[format(7000, "032x")]
    assert store.rows("SELECT first_call_n FROM thread_tails_mat WHERE thread_id = 't'") == [
        (first,)
    ]
    # a row of thread t numbered before its first call, holding the key of the next
    # turn's question: were it read, the question would count as asked before, not shown
    store.con.execute(
        "INSERT INTO message_keys_mat SELECT * REPLACE ('t' AS thread_id) "
        "FROM message_keys_mat WHERE thread_id = 'other' AND role = 'user'"
    )
    store.insert(chat_turn(4, "t", [("system", SYSTEM), ("user", "q4"), ("user", "q5")], "a4"))
    store.derive_all()
    shown = store.rows("SELECT role, content FROM transcript WHERE thread_id = 't' ORDER BY seq")
    assert shown[-3:] == [("user", "q4"), ("user", "q5"), ("assistant", "a4")], shown
    store.con.execute("DELETE FROM message_keys_mat WHERE thread_id = 't' AND trace_n < ?", [first])
    store.assert_kept_equals_scratch()
