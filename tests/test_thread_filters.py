"""Finding threads (issue 15): `ThreadFilter` through its doors (ThreadsClient on a file
and on a collector's API, POST /threads/query, the CLI), each field alone and together,
with `total` counting the matches; bad filters are one-line errors; the attribute values
a filter matches are kept exactly as a derivation from scratch keeps them."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from test_derive_bounds import T0, Store, span

from otel_threads import ThreadFilter, ThreadsClient, ThreadSpanProcessor, ThreadsQueryReq, thread
from otel_threads.cli import main as cli
from otel_threads.collector import Collector, Config

ANY = ("127.0.0.1", 0)


def _messages(*pairs: tuple[str, str]) -> str:
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": t}]} for r, t in pairs])


def _call(tracer, model: str, asked: str, answer: str, tool: str | None = None) -> None:
    output: list[dict] = [{"type": "text", "content": answer}]
    if tool:
        output.append({"type": "tool_call", "id": "call_1", "name": tool, "arguments": {"n": 1}})
    with tracer.start_as_current_span(
        f"chat {model}",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model.split("-2024")[0],
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.input.messages": _messages(("system", "Be kind."), ("user", asked)),
            "gen_ai.output.messages": json.dumps(
                [{"role": "assistant", "parts": output, "finish_reason": "stop"}]
            ),
        },
    ):
        pass


def _provider(endpoint: str, service: str) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "otel_threads.project": "shop"})
    )
    provider.add_span_processor(ThreadSpanProcessor())
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    return provider


def converse(endpoint: str) -> None:
    """Four threads:
    - refund-tool: a user asks for a REFUND, gpt-4o calls lookup_order, a tool span runs
      it (service tools); tenant acme, tags vip and beta, user u1;
    - refund-error: a user asks about a refund; claude; the turn fails; tenant globex;
    - chat: three turns, the assistant says "refund" (the user never does); tenant acme,
      tier 3, user u2;
    - quiet: one turn, no LLM call, no attributes."""
    front, tools = _provider(endpoint, "front"), _provider(endpoint, "tools")
    ft, tt = front.get_tracer("t"), tools.get_tracer("t")
    meta = {"tenant": "acme", "tags": ("vip", "beta"), "user.id": "u1"}
    with thread("refund-tool"), ft.start_as_current_span("turn", attributes=meta) as turn:
        _call(ft, "gpt-4o-2024-08-06", "I want a REFUND for order 7", "Looking.", "lookup_order")
        # an evaluation the app made of its turn (annotation relevance=relevant)
        turn.add_event(
            "gen_ai.evaluation.result",
            {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.label": "relevant"},
        )
        with tt.start_as_current_span("execute_tool lookup_order") as s:
            s.set_attribute("gen_ai.tool.name", "lookup_order")
    with thread("refund-error"), ft.start_as_current_span("turn") as turn:
        turn.set_attribute("tenant", "globex")
        _call(ft, "claude-3-5-sonnet-20241022", "Where is my refund?", "Sorry.")
        turn.set_status(Status(StatusCode.ERROR, "upstream failed"))
    for i in range(3):
        attrs = {"tenant": "acme", "tier": 3, "beta": True, "user.id": "u2"}
        with thread("chat"), ft.start_as_current_span("turn", attributes=attrs):
            _call(ft, "gpt-4o-mini-2024-07-18", f"hello {i}", "No refund talk here.")
    with thread("quiet"), ft.start_as_current_span("turn"):
        pass
    front.shutdown()
    tools.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(a collector serving the four threads, a copy of its file that no collector holds)"""
    root = tmp_path_factory.mktemp("f")
    db, copy = str(root / "f.duckdb"), str(root / "copy.duckdb")
    config = Config(parse_workers=0, db=db, grpc=ANY, http=None, api=ANY)
    c = Collector(config)
    c.start()
    converse(c.endpoints.grpc)
    c.store.sync(60)
    ThreadsClient(c.endpoints.api).annotate("refund-error", "thumbs", label="down", score=0)
    c.stop()
    shutil.copy(db, copy)
    c = Collector(config)
    c.start()
    yield c, copy
    c.stop()


CASES = [
    ({"text": "refund"}, ["chat", "refund-error", "refund-tool"]),
    ({"text": "REFUND", "role": "user"}, ["refund-error", "refund-tool"]),
    ({"text": "refund", "role": "assistant"}, ["chat"]),
    ({"text": "be kind", "role": "system"}, ["chat", "refund-error", "refund-tool"]),
    ({"text": "100%"}, []),  # LIKE's wildcards are literal
    ({"text": "order_7"}, []),
    ({"has_error": True}, ["refund-error"]),
    ({"has_error": False}, ["chat", "quiet", "refund-tool"]),
    ({"tool": "lookup_order"}, ["refund-tool"]),
    ({"tool": "lookup"}, []),
    ({"model": "gpt-4o*"}, ["chat", "refund-tool"]),
    ({"model": "GPT-4O-2024-08-06"}, ["refund-tool"]),
    ({"model": "*sonnet*"}, ["refund-error"]),
    ({"model": "gpt"}, []),
    ({"user_id": "u2"}, ["chat"]),
    ({"project": "shop"}, ["chat", "quiet", "refund-error", "refund-tool"]),
    ({"project": "other"}, []),
    ({"service_name": "tools"}, ["refund-tool"]),
    ({"service_name": "front"}, ["chat", "quiet", "refund-error", "refund-tool"]),
    ({"min_turns": 2}, ["chat"]),
    ({"max_turns": 1}, ["quiet", "refund-error", "refund-tool"]),
    ({"attributes": {"tenant": "acme"}}, ["chat", "refund-tool"]),
    ({"attributes": {"tenant": "acme", "tags": "vip"}}, ["refund-tool"]),
    ({"attributes": {"tags": "beta"}}, ["refund-tool"]),
    ({"attributes": {"tier": 3}}, ["chat"]),
    ({"attributes": {"tier": "3"}}, ["chat"]),
    ({"attributes": {"beta": True}}, ["chat"]),
    ({"attributes": {"gen_ai.tool.name": "lookup_order"}}, ["refund-tool"]),
    ({"attributes": {"tenant": "ACME"}}, []),
    (
        {"text": "refund", "has_error": False, "attributes": {"tenant": "acme"}},
        ["chat", "refund-tool"],
    ),
    ({"text": "refund", "role": "user", "tool": "lookup_order"}, ["refund-tool"]),
    ({"annotation": "thumbs"}, ["refund-error"]),
    ({"annotation": "thumbs=down"}, ["refund-error"]),
    ({"annotation": "thumbs=up"}, []),
    ({"annotation": "relevance=relevant", "tool": "lookup_order"}, ["refund-tool"]),
]


@pytest.mark.parametrize(("given", "expected"), CASES)
def test_each_filter_on_a_file_and_through_the_api(served, given, expected):
    c, db = served
    for client in (ThreadsClient(db), ThreadsClient(c.endpoints.api)):
        res = client.threads_query(
            ThreadsQueryReq(filter=given, sort_by=[{"field": "thread_id", "direction": "asc"}])
        )
        assert [t.thread_id for t in res.threads] == expected, (client, given)
        assert res.total == len(expected)


def test_total_counts_every_match_and_the_window_composes(served):
    c, _ = served
    client = ThreadsClient(c.endpoints.api)
    res = client.threads_query(ThreadsQueryReq(filter=ThreadFilter(project="shop"), limit=1))
    assert (len(res.threads), res.total) == (1, 4)
    page = client.threads_query(
        ThreadsQueryReq(
            filter={"text": "refund"},
            limit=2,
            offset=1,
            sort_by=[{"field": "thread_id", "direction": "asc"}],
        )
    )
    assert ([t.thread_id for t in page.threads], page.total) == (["refund-error", "refund-tool"], 3)
    later = client.threads_query(
        ThreadsQueryReq(filter={"text": "refund"}, sortable_datetime_after="2999-01-01T00:00:00Z")
    )
    assert (later.threads, later.total) == ([], 0)


def test_the_new_sort_fields(served):
    _, db = served
    res = ThreadsClient(db).threads_query(
        ThreadsQueryReq(sort_by=[{"field": "llm_call_count", "direction": "desc"}], limit=1)
    )
    assert [t.thread_id for t in res.threads] == ["chat"]
    res = ThreadsClient(db).threads_query(
        ThreadsQueryReq(sort_by=[{"field": "error_turn_count", "direction": "desc"}], limit=1)
    )
    assert [t.thread_id for t in res.threads] == ["refund-error"]


def _post(c: Collector, body: object) -> tuple[int, object]:
    req = urllib.request.Request(
        c.endpoints.api + "/threads/query",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"filter": {"txt": "x"}}, "unknown filter field(s) ['txt']"),
        ({"filter": {"role": "user"}}, "give text too"),
        ({"filter": {"text": "x", "role": "robot"}}, "user, assistant, system, tool"),
        ({"filter": {"text": " "}}, "non-empty"),
        ({"filter": {"has_error": "yes"}}, "true or false"),
        ({"filter": {"min_turns": 3, "max_turns": 2}}, "more than max_turns"),
        ({"filter": {"min_turns": -1}}, "non-negative"),
        ({"filter": {"attributes": ["tenant"]}}, "key: value"),
        ({"filter": {"attributes": {"tenant": {"a": 1}}}}, "strings, numbers or booleans"),
        ({"filter": {"attributes": {"k": "v" * 300}}}, "not kept"),
        ({"filter": "refund"}, "filter must be a JSON object"),
        ({"filter": {"annotation": "=down"}}, "NAME or NAME=LABEL"),
        ({"sort_by": [{"field": "cost"}]}, "cannot sort by 'cost'"),
    ],
)
def test_bad_filters_are_one_line_400s(served, body, says):
    c, _ = served
    status, answer = _post(c, body)
    assert status == 400
    message = answer["error"] if isinstance(answer, dict) else str(answer)
    assert says in message and "\n" not in message


def test_the_command_line_spells_each_filter(served):
    _, db = served

    def ids(*args: str) -> list[str]:
        result = CliRunner().invoke(cli, ["threads", "--db", db, "--json", *args])
        assert result.exit_code == 0, result.output
        return sorted(t["thread_id"] for t in json.loads(result.output)["threads"])

    assert ids("--search", "refund", "--role", "user") == ["refund-error", "refund-tool"]
    assert ids("--errors") == ["refund-error"]
    assert ids("--no-errors", "--min-turns", "1", "--max-turns", "1") == ["quiet", "refund-tool"]
    assert ids("--tool", "lookup_order") == ["refund-tool"]
    assert ids("--model", "gpt-4o*", "--user", "u2") == ["chat"]
    assert ids("--project", "shop", "--service", "tools") == ["refund-tool"]
    assert ids("--attr", "tenant=acme", "--attr", "tags=vip") == ["refund-tool"]
    assert ids("--attr", "tier=3") == ["chat"]
    assert ids("--annotation", "thumbs=down") == ["refund-error"]
    bad = CliRunner().invoke(cli, ["threads", "--db", db, "--attr", "tenant"])
    assert bad.exit_code == 2 and "--attr takes KEY=VALUE" in bad.output
    bad = CliRunner().invoke(cli, ["threads", "--db", db, "--role", "user"])
    assert bad.exit_code != 0 and "give text too" in bad.output


def _matching(store: Store, **given) -> list[str]:
    conds, params = ThreadFilter(**given).where()
    query = f"SELECT thread_id FROM threads WHERE {' AND '.join(conds)} ORDER BY 1"
    return [r[0] for r in store.rows(query, *params)]


def test_kept_attribute_values_follow_late_and_moved_spans(tmp_path):
    """A turn whose child comes first, and a trace that moves to another thread when the
    span that names its thread arrives late: what the filter reads is what deriving
    from scratch gives, and the thread the trace left no longer matches."""
    store = Store(tmp_path / "a.duckdb")
    turn = span(1, 16, "turn", T0, {"gen_ai.conversation.id": "t1", "tenant": "acme"})
    child = span(1, 17, "step", T0 + 10, {"plan": "pro"}, parent=16)
    store.insert([child])
    store.derive_all()
    store.insert([turn])
    store.derive_all()
    store.assert_kept_equals_scratch()
    assert _matching(store, attributes={"tenant": "acme", "plan": "pro"}) == ["t1"]
    # trace 2: c names t2; a (under a root not sent yet) and its child b take the trace's
    # thread, t2; then the root arrives naming t3, and a and b move there
    c = span(2, 21, "c", T0 + 10**9, {"session.id": "t2"})
    a = span(2, 22, "a", T0 + 10**9, {}, parent=999)
    b = span(2, 23, "b", T0 + 10**9, {"x": "y"}, parent=22)
    store.insert([c, a, b])
    store.derive_all()
    assert _matching(store, attributes={"x": "y"}) == ["t2"]
    store.insert([span(2, 999, "root", T0 + 10**9 - 5, {"gen_ai.conversation.id": "t3"})])
    store.derive_all()
    store.assert_kept_equals_scratch()
    assert _matching(store, attributes={"x": "y"}) == ["t3"]
    assert _matching(store, attributes={"session.id": "t2"}) == ["t2"]


#: What derive_thread_attributes keeps, written the plain way (json_each: a row per key
#: with its value's type); the view reads keys and values apart, faster, and must agree.
_KEPT_BY_JSON_EACH = """
SELECT i, list_sort(list(DISTINCT md5_number_lower(key || chr(31) || value))) AS hashes
FROM (
    SELECT o.i, e.key,
           unnest(CASE WHEN e.type = 'ARRAY' THEN list_filter(
                           json_extract(e.value, '$[*]'),
                           lambda x: json_type(x) NOT IN ('OBJECT', 'ARRAY', 'NULL'))
                       WHEN e.type IN ('OBJECT', 'NULL') THEN []
                       ELSE [e.value] END) ->> '$' AS value
    FROM (SELECT i, attributes AS object FROM spans_raw
          UNION SELECT i, resource_attributes FROM spans_raw) o, json_each(o.object) e
)
WHERE length(value) <= 256
GROUP BY i
"""


def test_kept_attribute_values_of_odd_objects_are_those_json_each_reads():
    """Repeated keys, nulls, nested objects and arrays, arrays of mixed values, strings
    that begin as JSON of another type would ("[", "{", "null"), empty keys and values,
    escapes, big and negative numbers, long values, empty objects, no resource."""
    import duckdb

    from otel_threads.store.sqlfiles import sql_files

    objects = [
        ('{"a":1,"a":2,"b":"x"}', '{"service.name":"s"}'),
        ("{}", None),
        ('{"x":{"y":1},"z":null,"w":[1,"two",null,{"o":1},[3],true,-2.5e3],"e":[]}', "{}"),
        ('{"s":"[no","t":"null","u":"{x","v":"","":"empty key","k.\\"q/~":"\\u00e9\\n"}', None),
        ('{"big":12345678901234567890,"f":false,"n":-0.0,"long":"' + "v" * 300 + '"}', None),
        ('{"tags":["vip","beta","vip"],"tier":3}', '{"tier":"3"}'),
    ]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE spans_raw (i INT, trace_id VARCHAR, span_id VARCHAR, "
        "attributes JSON, resource_attributes JSON)"
    )
    con.execute("CREATE TABLE span_threads (thread_id VARCHAR, trace_id VARCHAR, span_id VARCHAR)")
    for i, (attributes, resource) in enumerate(objects):
        con.execute(
            "INSERT INTO spans_raw VALUES (?, ?, 's', ?, ?)", [i, f"t{i}", attributes, resource]
        )
        con.execute("INSERT INTO span_threads VALUES (?, ?, 's')", [f"th{i}", f"t{i}"])
    derive = sql_files().texts["derive_thread_attributes"]
    view = con.execute(
        f"SELECT CAST(trace_id[2:] AS INT), attribute_hashes FROM ({derive}) ORDER BY 1"
    ).fetchall()
    assert view == con.execute(f"{_KEPT_BY_JSON_EACH} ORDER BY 1").fetchall()
    assert [i for i, _ in view] == [0, 2, 3, 4, 5]  # ({} with no resource keeps nothing)
    # (a repeated key keeps both values; "vip" once; tier 3 as number and as text: one)
    assert [len(h) for _, h in view] == [4, 4, 6, 3, 3]


def test_the_views_hash_is_md5_number_lower():
    """derive_thread_attributes hashes as (md5_number(x) >> 64)::UBIGINT, which must be
    md5_number_lower(x), what the filter (threads_with_attribute) and the ClickHouse
    filters compute: over empty, multi-byte, control-character, long and many random
    strings."""
    import random

    import duckdb

    from otel_threads.store.sqlfiles import sql_files

    view = sql_files().texts["derive_thread_attributes"]
    assert "(md5_number(key || chr(31) || value) >> 64)::UBIGINT" in view
    rnd = random.Random(14)
    alphabet = "ab\x00\x1f\x7f\u00e9\u4e2d\U0001f600 '\"\\"
    strings = ["", "a", chr(31), "x" * 256, "\u00e9" * 300, "tenant" + chr(31) + "acme"]
    strings += ["".join(rnd.choices(alphabet, k=rnd.randint(0, 64))) for _ in range(5000)]
    con = duckdb.connect()
    con.execute("CREATE TABLE s (v VARCHAR)")
    con.executemany("INSERT INTO s VALUES (?)", [[v] for v in strings])
    differ = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE md5_number_lower(v) IS DISTINCT FROM "
        "(md5_number(v) >> 64)::UBIGINT) FROM s"
    ).fetchall()
    assert differ == [(len(strings), 0)]


def _get(c: Collector, path: str, etag: str | None = None) -> tuple[int, object, str | None]:
    headers = {"If-None-Match": etag} if etag else {}
    req = urllib.request.Request(c.endpoints.api + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers.get("ETag")
    except urllib.error.HTTPError as e:
        with e:
            body = e.read()
            return e.code, json.loads(body) if body else None, e.headers.get("ETag")


def test_the_pages_list_takes_the_filters_as_url_parameters(served):
    c, _ = served
    status, body, tag = _get(c, "/ui/threads?search=refund&role=user&sort=thread_id:asc")
    assert status == 200 and [t["thread_id"] for t in body["threads"]] == [
        "refund-error",
        "refund-tool",
    ]
    assert _get(c, "/ui/threads?search=refund&role=user&sort=thread_id:asc", tag)[0] == 304
    # another filter is another answer, whatever the ETag sent
    status, body, _ = _get(c, "/ui/threads?search=refund&role=assistant", tag)
    assert status == 200 and [t["thread_id"] for t in body["threads"]] == ["chat"]
    status, body, _ = _get(c, "/ui/threads?attr=tenant%3Dacme&attr=tags%3Dvip&errors=false")
    assert [t["thread_id"] for t in body["threads"]] == ["refund-tool"]
    status, body, _ = _get(c, "/ui/threads?min_turns=2&max_cost=100&model=gpt*&user=u2")
    assert [t["thread_id"] for t in body["threads"]] == ["chat"]
    for bad, says in [
        ("errors=maybe", "errors must be true or false"),
        ("min_turns=x", "min_turns must be an integer"),
        ("attr=tenant", "attr takes KEY=VALUE"),
        ("colour=red", "unknown parameter(s) ['colour']"),
    ]:
        status, body, _ = _get(c, f"/ui/threads?{bad}")
        assert status == 400 and says in body["error"], bad


def test_filter_edges_are_one_line_errors(served):
    c, db = served
    for body, says in [
        ({"filter": {"min_turns": 10**40}}, "non-negative integer"),
        ({"filter": {"max_cost_usd": float("inf")}}, "non-negative number"),
    ]:
        status, answer = _post(c, body)
        assert status == 400 and says in answer["error"], body
    status, body, _ = _get(c, "/ui/threads?attr=tier%3D1&attr=tier%3D2")
    assert status == 400 and "key twice" in body["error"]
    status, body, _ = _get(c, "/ui/threads?min_turns=" + "9" * 40)
    assert status == 400
    bad = CliRunner().invoke(cli, ["threads", "--db", db, "--attr", "a=1", "--attr", "a=2"])
    assert bad.exit_code == 2 and "given twice" in bad.output
    old = CliRunner().invoke(cli, ["threads", "--db", db, "--after", "99999999999w"])
    assert old.exit_code == 2 and "Traceback" not in old.output
