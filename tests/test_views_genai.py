"""The GenAI views (llm_calls, messages, transcript) over every convention of GENAI_CONVENTIONS.md.

Every OTLP/JSON export in tests/fixtures/genai/ (hand-built from the conventions'
verified examples, or recorded from the real producers; see build.py there) is posted
over HTTP to one real in-process collector; the tests read the views and compare whole
rows, in order. Each export has its own trace ids (fixture number << 8) and thread.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from otel_threads.collector import Collector, Config

FIXTURES = Path(__file__).parent / "fixtures" / "genai"
ANY = ("127.0.0.1", 0)
EPOCH = datetime(2023, 11, 14, 22, 13, 20)  # build.BASE_NS

SYSTEM = "You are a support bot."
ASK = "Where is order A-1042?"
RESULT = "A-1042: shipped"
ANSWER = "Order A-1042 has shipped."
CALL = '[{"id":"call_1","name":"get_order_status","arguments":{"order_id":"A-1042"}}]'


def sid(n: int) -> str:
    return f"{n:016x}"


def tid(fixture: int, n: int = 1) -> str:
    return f"{(fixture << 8) + n:032x}"


def at(fixture: int, ms: float) -> datetime:
    return EPOCH + timedelta(seconds=fixture * 1000, milliseconds=ms)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    c = Collector(
        Config(
            parse_workers=0,
            db=str(tmp_path_factory.mktemp("genai") / "genai.duckdb"),
            grpc=ANY,
            http=ANY,
            api=ANY,
        )
    )
    c.start()
    for path in sorted(FIXTURES.glob("*.json")):
        kind = "logs" if path.name.endswith(".logs.json") else "traces"
        req = urllib.request.Request(
            f"{c.endpoints.http}/v1/{kind}",
            data=path.read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert (path.name, resp.status, resp.read()) == (path.name, 200, b"{}")

    def query(sql: str, *params: object) -> list[tuple]:
        c.store.sync(30)  # the derived views follow the commits
        with c.store.cursor() as cur:
            return cur.execute(sql, list(params)).fetchall()

    yield query
    c.stop()


def messages(db, thread: str) -> list[tuple]:
    return db(
        "SELECT * FROM messages WHERE thread_id = ? "
        "ORDER BY trace_id, span_id, direction, position",
        thread,
    )


def transcript(db, thread: str) -> list[tuple]:
    return db("SELECT * FROM transcript WHERE thread_id = ? ORDER BY seq", thread)


def llm_calls(db, thread: str) -> list[tuple]:
    """The thread's calls (without cost_usd: tests/test_cost.py checks it)."""
    return db(
        "SELECT * EXCLUDE (cost_usd) FROM llm_calls WHERE thread_id = ? ORDER BY start_time",
        thread,
    )


# --- the same tool loop in every convention --------------------------------------------


@dataclass(frozen=True)
class Loop:
    """A fixture holding the tool loop: turn span 1, LLM call spans `calls`."""

    thread: str
    fixture: int
    convention: str
    name: str = "chat gpt-4o-mini"
    calls: tuple[int, int] = (2, 3)
    times: tuple[tuple[int, int], ...] = ((10, 40), (50, 80))
    finish: tuple[str | None, str | None] = ("tool_call", "stop")
    tool_result: str = RESULT
    tool_name: str | None = None
    operation: str = "chat"
    provider: str | None = "openai"
    request_model: str = "gpt-4o-mini"
    response_model: str | None = "gpt-4o-mini-2024-07-18"
    response_ids: tuple[str | None, str | None] = ("chatcmpl-1", "chatcmpl-2")
    finish_reasons: tuple[list | None, list | None] = (["tool_call"], ["stop"])
    service: str = "support-app"

    def __str__(self) -> str:
        return self.convention + ":" + self.thread


LOOPS = [
    Loop("conv-semconv-json", 1, "semconv-1.37"),
    Loop("conv-semconv-structured", 2, "semconv-1.37"),
    Loop("conv-pydantic", 3, "semconv-1.37", response_model=None, response_ids=(None, None)),
    Loop("conv-span-event", 4, "semconv-1.37-span-event"),
    Loop("conv-1-28", 5, "semconv-1.28-events"),
    Loop(
        "conv-1-27",
        6,
        "semconv-1.27-span-events",
        name="chat.completions gpt-4o-mini",
        response_ids=(None, None),
    ),
    Loop("conv-openllmetry-flat", 7, "openllmetry-flat", name="openai.chat"),
    Loop("conv-openinference-io", 8, "openinference-io", name="ChatCompletion"),
    Loop(
        "conv-vercel",
        9,
        "vercel-ai-legacy",
        name="ai.generateText.doGenerate",
        calls=(2, 4),
        times=((10, 40), (50, 90)),
        response_ids=("resp-1", "resp-2"),
        service="next-app",
    ),
    Loop("conv-langsmith", 10, "langsmith", name="ChatOpenAI", response_ids=(None, None)),
    Loop(
        "conv-pydantic-events",
        11,
        "pydantic-ai-events",
        tool_name="get_order_status",
        response_ids=(None, None),
    ),
    Loop("conv-mlflow", 12, "mlflow", name="Completions"),
    Loop(
        "conv-logfire",
        13,
        "logfire-v1",
        name="Chat Completion with 'gpt-4o-mini'",
        finish=(None, None),
        response_ids=(None, None),
        finish_reasons=(None, None),
    ),
    Loop(
        "conv-adk",
        14,
        "google-adk",
        name="call_llm",
        finish=("stop", "stop"),
        tool_result='{"result":"A-1042: shipped"}',
        operation="generate_content",
        provider="gcp.vertex.agent",
        request_model="gemini-2.0-flash",
        response_model=None,
        response_ids=(None, None),
        finish_reasons=(["stop"], ["stop"]),
    ),
    Loop(
        "conv-langfuse",
        15,
        "langfuse",
        name="OpenAI-generation",
        finish=(None, None),
        provider=None,
        response_model=None,
        response_ids=(None, None),
        finish_reasons=(None, None),
    ),
]


@pytest.mark.parametrize("loop", LOOPS, ids=str)
def test_every_convention_reads_the_tool_loop_into_the_same_messages(db, loop):
    first, second = (sid(c) for c in loop.calls)
    trace, turn = tid(loop.fixture), sid(1)

    def row(
        span,
        direction,
        position,
        role,
        content=None,
        tool_calls=None,
        tool_call_id=None,
        finish_reason=None,
        name=None,
    ):
        return (
            loop.thread,
            turn,
            trace,
            span,
            direction,
            position,
            role,
            content,
            tool_calls,
            tool_call_id,
            finish_reason,
            loop.convention,
            span,
            name,
        )

    assert messages(db, loop.thread) == [
        row(first, "input", 0, "system", SYSTEM),
        row(first, "input", 1, "user", ASK),
        row(first, "output", 0, "assistant", None, CALL, finish_reason=loop.finish[0]),
        row(second, "input", 0, "system", SYSTEM),
        row(second, "input", 1, "user", ASK),
        row(second, "input", 2, "assistant", None, CALL),
        row(second, "input", 3, "tool", loop.tool_result, None, "call_1", name=loop.tool_name),
        row(second, "output", 0, "assistant", ANSWER, finish_reason=loop.finish[1]),
    ]
    # two calls in one turn read as: system prompt, user, tool call, tool result, answer
    assert transcript(db, loop.thread) == [
        (loop.thread, 1, turn, "system", SYSTEM, None, None, None, trace, first, "input", 0),
        (loop.thread, 2, turn, "user", ASK, None, None, None, trace, first, "input", 1),
        (
            loop.thread,
            3,
            turn,
            "assistant",
            None,
            CALL,
            None,
            loop.finish[0],
            trace,
            first,
            "output",
            0,
        ),
        (
            loop.thread,
            4,
            turn,
            "tool",
            loop.tool_result,
            None,
            "call_1",
            None,
            trace,
            second,
            "input",
            3,
        ),
        (
            loop.thread,
            5,
            turn,
            "assistant",
            ANSWER,
            None,
            None,
            loop.finish[1],
            trace,
            second,
            "output",
            0,
        ),
    ]


@pytest.mark.parametrize("loop", LOOPS, ids=str)
def test_every_convention_gives_one_llm_call_row_per_call(db, loop):
    rows = []
    for i, (span, (start, end)) in enumerate(zip(loop.calls, loop.times, strict=True)):
        c = i + 1
        rows.append(
            (
                loop.thread,
                sid(1),
                tid(loop.fixture),
                sid(span),
                loop.name + ("_2" if loop.convention == "mlflow" and c == 2 else ""),
                loop.operation,
                loop.provider,
                loop.request_model,
                loop.response_model,
                loop.response_ids[i],
                20 * c,
                5 * c,
                25 * c,
                None,
                None,
                None,
                loop.finish_reasons[i],
                at(loop.fixture, start),
                at(loop.fixture, end),
                float(end - start),
                "UNSET",
                loop.service,
                loop.convention,
                sid(span),
            )
        )
    assert llm_calls(db, loop.thread) == rows


# --- the real producers, as recorded ---------------------------------------------------

RECORDED = [  # (thread, fixture, convention, call span name, status)
    ("rec-openai-v2-span-only", 20, "semconv-1.37", "chat gpt-4o-mini", "UNSET"),
    ("rec-openai-v2-event-only", 21, "semconv-1.37-event", "chat gpt-4o-mini", "UNSET"),
    ("rec-openai-v2-span-and-event", 22, "semconv-1.37", "chat gpt-4o-mini", "UNSET"),
    ("rec-openllmetry-0-62", 23, "openllmetry-json", "openai.chat", "UNSET"),
    ("rec-openinference-0-1-66", 24, "openinference", "ChatCompletion", "OK"),
]


@pytest.mark.parametrize(
    ("thread", "fixture", "convention", "name", "status"), RECORDED, ids=[r[0] for r in RECORDED]
)
def test_recorded_producers_two_turns(db, thread, fixture, convention, name, status):
    t1, t2 = tid(fixture, 1), tid(fixture, 2)
    turn1, turn2 = sid(1), sid(4)
    answer = f"Here is what I found: {RESULT}"
    assert transcript(db, thread) == [
        (thread, 1, turn1, "system", SYSTEM, None, None, None, t1, sid(2), "input", 0),
        (thread, 2, turn1, "user", ASK, None, None, None, t1, sid(2), "input", 1),
        (thread, 3, turn1, "assistant", None, CALL, None, "tool_call", t1, sid(2), "output", 0),
        (thread, 4, turn1, "tool", RESULT, None, "call_1", None, t1, sid(3), "input", 3),
        (thread, 5, turn1, "assistant", answer, None, None, "stop", t1, sid(3), "output", 0),
        (thread, 6, turn2, "user", "Thanks!", None, None, None, t2, sid(5), "input", 5),
        (
            thread,
            7,
            turn2,
            "assistant",
            "You said: Thanks!",
            None,
            None,
            "stop",
            t2,
            sid(5),
            "output",
            0,
        ),
    ]
    got = db(
        "SELECT turn_id, trace_id, span_id, name, operation, provider, request_model, "
        "response_model, response_id, input_tokens, output_tokens, total_tokens, "
        "finish_reasons, status_code, service_name, convention FROM llm_calls "
        "WHERE thread_id = ? ORDER BY start_time",
        thread,
    )
    fake = "gpt-4o-mini-2024-07-18"
    assert got == [
        (
            turn1,
            t1,
            sid(2),
            name,
            "chat",
            "openai",
            "gpt-4o-mini",
            fake,
            "chatcmpl-fake-1",
            9,
            2,
            11,
            ["tool_call"],
            status,
            "support-app",
            convention,
        ),
        (
            turn1,
            t1,
            sid(3),
            name,
            "chat",
            "openai",
            "gpt-4o-mini",
            fake,
            "chatcmpl-fake-2",
            11,
            7,
            18,
            ["stop"],
            status,
            "support-app",
            convention,
        ),
        (
            turn2,
            t2,
            sid(5),
            name,
            "chat",
            "openai",
            "gpt-4o-mini",
            fake,
            "chatcmpl-fake-3",
            19,
            3,
            22,
            ["stop"],
            status,
            "support-app",
            convention,
        ),
    ]
    # every call replays the history: the last call's input holds all of it
    assert db(
        "SELECT direction, position, role, content, tool_call_id FROM messages "
        "WHERE span_id = ? AND trace_id = ? ORDER BY direction, position",
        sid(5),
        t2,
    ) == [
        ("input", 0, "system", SYSTEM, None),
        ("input", 1, "user", ASK, None),
        ("input", 2, "assistant", None, None),
        ("input", 3, "tool", RESULT, "call_1"),
        ("input", 4, "assistant", answer, None),
        ("input", 5, "user", "Thanks!", None),
        ("output", 0, "assistant", "You said: Thanks!", None),
    ]


def test_content_sent_both_as_span_attributes_and_as_an_event_is_read_once(db):
    def by_call(thread):
        return db(
            "SELECT span_id, direction, position, role, content, tool_calls, "
            "tool_call_id, finish_reason FROM messages WHERE thread_id = ? "
            "ORDER BY span_id, direction, position",
            thread,
        )

    both = by_call("rec-openai-v2-span-and-event")
    assert len(both) == 8 + 7
    assert both == by_call("rec-openai-v2-span-only") == by_call("rec-openai-v2-event-only")
    assert db("SELECT count(*) FROM logs WHERE trace_id IN (?, ?)", tid(22, 1), tid(22, 2)) == [
        (3,)
    ]


# --- specific rules --------------------------------------------------------------------


def test_json_string_and_structured_values_read_alike(db):
    def content(thread):
        return db(
            "SELECT span_id, direction, position, role, content, tool_calls, "
            "tool_call_id, finish_reason, convention FROM messages WHERE thread_id = ? "
            "ORDER BY span_id, direction, position",
            thread,
        )

    assert content("conv-semconv-json") == content("conv-semconv-structured")
    assert db(
        "SELECT DISTINCT json_type(s.attributes->'gen_ai.input.messages') FROM spans s "
        "JOIN llm_calls c USING (trace_id, span_id) WHERE c.thread_id IN (?, ?) "
        "ORDER BY 1",
        "conv-semconv-json",
        "conv-semconv-structured",
    ) == [("ARRAY",), ("VARCHAR",)]


def test_nested_llm_spans_are_one_call(db):
    trace, turn = tid(16), sid(1)
    # LangChain (OpenLLMetry flat, messages, no tokens) > HTTP span > SDK's own span
    # (tokens, no messages); one-step ai.generateText > doGenerate (both with messages)
    assert llm_calls(db, "conv-nested") == [
        (
            "conv-nested",
            turn,
            trace,
            sid(4),
            "chat gpt-4o-mini",
            "chat",
            "openai",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            "chatcmpl-9",
            9,
            6,
            15,
            None,
            None,
            None,
            ["stop"],
            at(16, 13),
            at(16, 57),
            44.0,
            "UNSET",
            "support-app",
            "openllmetry-flat",
            sid(2),
        ),
        (
            "conv-nested",
            turn,
            trace,
            sid(6),
            "ai.generateText.doGenerate",
            "chat",
            "openai",
            "gpt-4o-mini",
            None,
            None,
            30,
            3,
            33,
            None,
            None,
            None,
            ["stop"],
            at(16, 101),
            at(16, 189),
            88.0,
            "UNSET",
            "support-app",
            "vercel-ai-legacy",
            sid(6),
        ),
    ]
    assert messages(db, "conv-nested") == [
        (
            "conv-nested",
            turn,
            trace,
            sid(4),
            "input",
            0,
            "user",
            "Hi!",
            None,
            None,
            None,
            "openllmetry-flat",
            sid(2),
            None,
        ),
        (
            "conv-nested",
            turn,
            trace,
            sid(4),
            "output",
            0,
            "assistant",
            "Hello! How can I help?",
            None,
            None,
            "stop",
            "openllmetry-flat",
            sid(2),
            None,
        ),
        (
            "conv-nested",
            turn,
            trace,
            sid(6),
            "input",
            0,
            "user",
            "Hi!",
            None,
            None,
            None,
            "vercel-ai-legacy",
            sid(6),
            None,
        ),
        (
            "conv-nested",
            turn,
            trace,
            sid(6),
            "input",
            1,
            "assistant",
            "Hello! How can I help?",
            None,
            None,
            None,
            "vercel-ai-legacy",
            sid(6),
            None,
        ),
        (
            "conv-nested",
            turn,
            trace,
            sid(6),
            "input",
            2,
            "user",
            "Thanks",
            None,
            None,
            None,
            "vercel-ai-legacy",
            sid(6),
            None,
        ),
        (
            "conv-nested",
            turn,
            trace,
            sid(6),
            "output",
            0,
            "assistant",
            "You are welcome.",
            None,
            None,
            "stop",
            "vercel-ai-legacy",
            sid(6),
            None,
        ),
    ]
    assert [(r[1], r[3], r[4]) for r in transcript(db, "conv-nested")] == [
        (1, "user", "Hi!"),
        (2, "assistant", "Hello! How can I help?"),
        (3, "user", "Thanks"),
        (4, "assistant", "You are welcome."),
    ]


def test_spans_that_are_no_llm_call(db):
    # agent / chain / tool spans that carry GenAI keys (a LangSmith chain, an MLflow
    # AGENT, an OpenInference CHAIN, an invoke_agent), a two-step ai.generateText (it holds
    # two calls) and the outer spans of nests (folded into their call) have no row
    names = db(
        "SELECT DISTINCT s.name FROM spans s LEFT JOIN llm_calls c "
        "USING (trace_id, span_id) WHERE c.span_id IS NULL ORDER BY 1"
    )
    assert [n for (n,) in names] == [
        "ChatOpenAI.chat",
        "POST /v1/chat/completions",
        "agent",
        "agent run",
        "ai.generateText",
        "ai.toolCall",
        "invoke_agent support_agent",
        "support.workflow",
        "turn",
        "turn 1",
        "turn 2",
        "turn 3",
        "turn 4",
        "turn 5",
        "turn 6",
    ]


def test_roles_and_finish_reasons_are_normalised(db):
    trace, span = tid(17), sid(2)

    def row(
        direction,
        position,
        role,
        content=None,
        tool_calls=None,
        tool_call_id=None,
        finish_reason=None,
    ):
        return (
            "conv-normalise",
            sid(1),
            trace,
            span,
            direction,
            position,
            role,
            content,
            tool_calls,
            tool_call_id,
            finish_reason,
            "semconv-1.37",
            span,
            None,
        )

    assert messages(db, "conv-normalise") == [
        row("input", 0, "system", "Be brief."),  # developer
        row("input", 1, "user", "Part one. Part two."),  # User; image part skipped
        row(
            "input",
            2,
            "assistant",
            None,  # reasoning is no content
            '[{"id":"c9","name":"lookup","arguments":"not json"}]',
        ),
        row("input", 3, "tool", '{"found":true}', None, "c9"),  # function
        row("output", 0, "assistant", "A", finish_reason="stop"),  # end_turn
        row("output", 1, "assistant", "B", finish_reason="length"),  # model, max_tokens
        row("output", 2, "assistant", None, finish_reason="content_filter"),
        row("output", 3, "assistant", "D", finish_reason="stop"),  # the span's STOP
    ]
    assert db(
        "SELECT provider, finish_reasons FROM llm_calls WHERE thread_id = ?", "conv-normalise"
    ) == [("azure.ai.openai", ["stop", "length", "content_filter", "stop"])]


def test_history_replayed_by_every_call_is_not_repeated(db):
    def turn(t):
        return sid(16 * (t - 1) + 1)

    got = [
        (seq, turn_id, role, content)
        for (_, seq, turn_id, role, content, *_) in transcript(db, "conv-replay")
    ]
    assert got == [
        (1, turn(1), "system", "Be helpful."),
        (2, turn(1), "user", "Hi"),
        (3, turn(1), "assistant", "Hello!"),
        (4, turn(2), "user", "Can you help?"),
        (5, turn(2), "assistant", "Sure. Proceed?"),
        (6, turn(3), "system", "Be brief."),  # the system prompt changed
        (7, turn(3), "user", "yes"),
        (8, turn(3), "assistant", "Done. Again?"),
        (9, turn(4), "user", "yes"),  # said again, not replayed; the history
        (10, turn(4), "assistant", "Done again."),  # this call sent was cut to 3 messages
    ]


def test_a_stateless_app_whose_user_repeats_a_question(db):
    # each call sends only the system prompt and the question: the second turn's
    # question is new although the first call held the same one
    got = [
        (seq, role, content) for (_, seq, _, role, content, *_) in transcript(db, "conv-stateless")
    ]
    assert got == [
        (1, "system", "Be helpful."),
        (2, "user", "Status?"),
        (3, "assistant", "All good (1)."),
        (4, "user", "Status?"),
        (5, "assistant", "All good (2)."),
    ]


def test_legacy_events_are_ordered_by_time_then_observed_time_then_arrival(db):
    # call 1's system and user events share an observed time and have no time; call 2's
    # events were exported out of order and carry times
    assert db(
        "SELECT span_id, direction, position, role FROM messages WHERE thread_id = ? "
        "ORDER BY span_id, direction, position",
        "conv-1-28",
    ) == [
        (sid(2), "input", 0, "system"),
        (sid(2), "input", 1, "user"),
        (sid(2), "output", 0, "assistant"),
        (sid(3), "input", 0, "system"),
        (sid(3), "input", 1, "user"),
        (sid(3), "input", 2, "assistant"),
        (sid(3), "input", 3, "tool"),
        (sid(3), "output", 0, "assistant"),
    ]
    assert db(
        "SELECT count(*) FILTER (WHERE attributes->>'event.name' IS NOT NULL), "
        "count(*) FILTER (WHERE time_unix_nano = 0) FROM logs WHERE trace_id = ?",
        tid(5),
    ) == [(3, 3)]


EDGE_CASES = {  # thread: messages (direction, position, role, content, tool_calls,
    #                              tool_call_id, finish_reason), convention
    # OpenLLMetry flat: multi-part content as a JSON string of OpenAI parts; image dropped
    "flat-parts": (
        [
            ("input", 0, "user", "Describe this.", None, None, None),
            ("output", 0, "assistant", "A cat.", None, None, "stop"),
        ],
        "openllmetry-flat",
    ),
    # OpenInference: developer role; text and image contents
    "oi-contents": (
        [
            ("input", 0, "system", "Be brief.", None, None, None),
            ("input", 1, "user", "What is this?", None, None, None),
            ("output", 0, "assistant", "A dog.", None, None, "stop"),
        ],
        "openinference",
    ),
    # gen_ai.developer.message event; content given as parts; choice without a role
    "events-developer": (
        [
            ("input", 0, "system", "Be brief.", None, None, None),
            ("input", 1, "user", "Hi", None, None, None),
            ("output", 0, "assistant", "Hel", None, None, "length"),
        ],
        "semconv-1.28-events",
    ),
    # Anthropic through MLflow: system apart, text + tool_use, tool_result in a user turn
    "anthropic": (
        [
            ("input", 0, "system", "Be brief.", None, None, None),
            ("input", 1, "user", "Weather?", None, None, None),
            (
                "input",
                2,
                "assistant",
                "Checking.",
                '[{"id":"tu_1","name":"weather","arguments":{"city":"Paris"}}]',
                None,
                None,
            ),
            ("input", 3, "tool", "rainy", None, "tu_1", None),
            ("output", 0, "assistant", "It is rainy.", None, None, "stop"),
        ],
        "mlflow",
    ),
    # Vercel AI SDK v4 part names (args, result) and SDK < 4 result keys
    "vercel-v4": (
        [
            ("input", 0, "user", "Do it.", None, None, None),
            (
                "input",
                1,
                "assistant",
                None,
                '[{"id":"c1","name":"act","arguments":{"a":1}}]',
                None,
                None,
            ),
            ("input", 2, "tool", '{"ok":true}', None, "c1", None),
            ("output", 0, "assistant", "Done.", None, None, "stop"),
        ],
        "vercel-ai-legacy",
    ),
    # LangChain messages as plain dicts; a generation with text only
    "langchain-dicts": (
        [
            ("input", 0, "system", "S", None, None, None),
            ("input", 1, "user", "H", None, None, None),
            ("output", 0, "assistant", "A", None, None, "length"),
        ],
        "langsmith",
    ),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_less_common_message_shapes(db, case):
    expected, convention = EDGE_CASES[case]
    thread = f"conv-edge-{case}"
    got = db(
        "SELECT direction, position, role, content, tool_calls, tool_call_id, "
        "finish_reason, convention FROM messages WHERE thread_id = ? "
        "ORDER BY direction, position",
        thread,
    )
    assert got == [(*row, convention) for row in expected]
    n = list(EDGE_CASES).index(case) + 1
    assert db(
        "SELECT trace_id, span_id, convention FROM llm_calls WHERE thread_id = ?", thread
    ) == [(tid(19, n), sid(16 * (n - 1) + 2), convention)]


def test_anthropic_call_metadata_from_mlflow_payloads(db):
    assert db(
        "SELECT provider, request_model, response_model, response_id, input_tokens, "
        "output_tokens, total_tokens, finish_reasons FROM llm_calls WHERE thread_id = ?",
        "conv-edge-anthropic",
    ) == [
        ("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514", "msg_1", 30, 5, 35, ["stop"])
    ]


def test_views_filter_by_thread(db):
    threads = db("SELECT thread_id, count(*) FROM transcript GROUP BY ALL ORDER BY 1")
    assert len(threads) == len(LOOPS) + len(RECORDED) + 4 + len(EDGE_CASES)
    assert all(n >= 2 for _, n in threads)
    assert db("SELECT count(*) FROM messages WHERE thread_id IS NULL") == [(0,)]
