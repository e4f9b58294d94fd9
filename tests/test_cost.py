"""Cost (issue 15): each LLM call's cost_usd is the producer's, else its tokens at the
genai-prices price of its provider and model (equal to what the genai-prices package
computes, tiers and cached tokens included), else NULL; turns and threads sum the known
costs; a price file adds and overrides models, and changing it re-derives the threads of
the models whose price changed, and no other."""

from __future__ import annotations

import json
import math

import pytest
from genai_prices import Usage, calc_price
from test_derive_bounds import T0, Store, span

from otel_threads.prices import PriceEntry, PriceFileError, load_price_file, reprice

CALLS = [
    # (provider, request model, response model, input, output, cache read, cache write)
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", 1200, 300, 200, None),
    ("openai", "gpt-4o-mini", None, 50, 10, None, None),
    ("anthropic", "claude-3-5-sonnet", "claude-3-5-sonnet-20241022", 9000, 700, 1000, 3000),
    ("gcp.gemini", "gemini-2.5-pro", "gemini-2.5-pro", 250_000, 2000, 100_000, None),
    ("gcp.gemini", "gemini-2.5-pro", "gemini-2.5-pro", 150_000, 2000, None, None),
]


def llm_span(
    i: int,
    thread: str,
    provider: str,
    request: str,
    response: str | None,
    tokens: tuple,
    extra: dict | None = None,
    turn_of: int | None = None,
) -> list[dict]:
    """An LLM call (trace 100+i), in its own turn of ``thread`` unless ``turn_of``."""
    trace = 100 + i
    n_in, n_out, read, write = tokens
    attrs = {
        "gen_ai.conversation.id": thread,
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": request,
        "gen_ai.usage.input_tokens": str(n_in),
        "gen_ai.usage.output_tokens": str(n_out),
    }
    if response:
        attrs["gen_ai.response.model"] = response
    if read is not None:
        attrs["gen_ai.usage.cache_read.input_tokens"] = str(read)
    if write is not None:
        attrs["gen_ai.usage.cache_write.input_tokens"] = str(write)
    attrs |= extra or {}
    turn = {"gen_ai.conversation.id": thread, "otel_threads.is_turn": True}
    start = T0 + i * 10**9
    return [
        span(trace, trace * 16, "turn", start, turn),
        span(trace, trace * 16 + 1, f"chat {request}", start + 10, attrs, parent=trace * 16),
    ]


def expected(provider: str, request: str, response: str | None, tokens: tuple) -> float:
    from otel_threads.prices import PROVIDERS

    n_in, n_out, read, write = tokens
    usage = Usage(
        input_tokens=n_in, output_tokens=n_out, cache_read_tokens=read, cache_write_tokens=write
    )
    return float(
        calc_price(
            usage, response or request, provider_id=PROVIDERS.get(provider, provider)
        ).total_price
    )


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "c.duckdb")


def test_a_calls_cost_is_what_genai_prices_computes(store):
    for i, (provider, request, response, *tokens) in enumerate(CALLS):
        store.insert(llm_span(i, "t", provider, request, response, tuple(tokens)))
    store.derive_all()
    got = store.rows("SELECT cost_usd FROM llm_calls ORDER BY start_time")
    for (provider, request, response, *tokens), (cost,) in zip(CALLS, got, strict=True):
        want = expected(provider, request, response, tuple(tokens))
        assert cost is not None and math.isclose(cost, want, rel_tol=1e-9), (request, cost, want)
    costs = [c for (c,) in got]
    assert store.rows("SELECT cost_usd, unpriced_call_count FROM threads") == [
        (pytest.approx(sum(costs), rel=1e-9), 0)
    ]
    store.assert_kept_equals_scratch()


def test_unknown_models_cost_null_and_the_producers_cost_wins(store):
    store.insert(llm_span(0, "a", "openai", "my-finetune-xyz", None, (100, 10, None, None)))
    store.insert(llm_span(1, "a", "ollama", "llama3", None, (100, 10, None, None)))
    store.insert(
        llm_span(
            2, "b", "ollama", "llama3", None, (100, 10, None, None), {"gen_ai.usage.cost": 0.25}
        )
    )
    store.insert(llm_span(3, "b", "openai", "gpt-4o", None, (100, 10, None, None)))
    store.derive_all()
    calls = [c for (c,) in store.rows("SELECT cost_usd FROM llm_calls ORDER BY start_time")]
    gpt = expected("openai", "gpt-4o", None, (100, 10, None, None))
    assert calls == [None, None, 0.25, pytest.approx(gpt)]
    threads = dict(
        (t, (c, n))
        for t, c, n in store.rows("SELECT thread_id, cost_usd, unpriced_call_count FROM threads")
    )
    assert threads["a"] == (None, 2)  # NULL, never 0
    assert threads["b"] == (pytest.approx(0.25 + gpt), 0)
    turns = store.rows("SELECT cost_usd, unpriced_call_count FROM turns ORDER BY start_time")
    assert turns[0] == (None, 1) and turns[2] == (0.25, 0)
    assert store.rows("SELECT provider, model, source FROM model_prices ORDER BY model") == [
        ("openai", "gpt-4o", "genai-prices: openai/gpt-4o"),
        ("ollama", "llama3", None),
        ("openai", "my-finetune-xyz", None),
    ]


def test_a_price_file_overrides_and_changing_it_rederives_only_those_models(store, tmp_path):
    store.insert(
        llm_span(0, "a", "vllm", "llama-3.1-70b-instruct", None, (1_000_000, 0, None, None))
    )
    store.insert(
        llm_span(1, "b", "openai", "gpt-4o-mini", None, (1_000_000, 1_000_000, None, None))
    )
    store.derive_all()

    def cost(t: str):
        return store.rows("SELECT cost_usd FROM threads WHERE thread_id = ?", t)[0][0]

    assert cost("a") is None
    mini = cost("b")
    path = tmp_path / "prices.json"
    path.write_text(json.dumps([{"provider": "vllm", "model": "llama-3.1-*", "input_mtok": 0.5}]))
    assert reprice(store.con, load_price_file(path)) == 1  # trace of thread a only
    store.derive_all()
    assert (cost("a"), cost("b")) == (0.5, mini)
    assert reprice(store.con, load_price_file(path)) == 0  # the same file: nothing to do
    path.write_text(
        json.dumps(
            [
                {"model": "gpt-4o-mini", "input_mtok": 1, "output_mtok": 2},
                {"provider": "vllm", "model": "llama-3.1-*", "input_mtok": 0.5},
            ]
        )
    )
    assert reprice(store.con, load_price_file(path)) == 1  # only b's price changed
    store.derive_all()
    assert (cost("a"), cost("b")) == (0.5, 3.0)
    assert reprice(store.con, None) == 2  # no file: back to genai-prices for both
    store.derive_all()
    assert (cost("a"), cost("b")) == (None, mini)
    store.assert_kept_equals_scratch()


def test_threads_sort_and_filter_by_cost(store):
    from otel_threads.query import ThreadsQueryReq, query_threads

    for i, n in enumerate((1000, 100_000, 10)):
        store.insert(llm_span(i, f"t{i}", "openai", "gpt-4o", None, (n, 0, None, None)))
    store.insert(llm_span(3, "free", "ollama", "llama3", None, (10, 0, None, None)))
    store.derive_all()

    def ids(**kw) -> list[str]:
        return [t.thread_id for t in query_threads(store.con, ThreadsQueryReq(**kw)).threads]

    assert ids(sort_by=[{"field": "cost_usd", "direction": "desc"}]) == ["t1", "t0", "t2", "free"]
    assert ids(
        filter={"min_cost_usd": 0.001}, sort_by=[{"field": "thread_id", "direction": "asc"}]
    ) == ["t0", "t1"]
    assert ids(filter={"max_cost_usd": 0.001}) == ["t2"]  # unknown cost matches neither


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{}", "must hold a JSON list"),
        ("[1]", "entry 1: each entry must be a JSON object"),
        ('[{"model": "m"}]', "give input_mtok or output_mtok"),
        ('[{"model": "m", "input_mtok": -1}]', "'input_mtok' must be a number from 0 to"),
        ('[{"model": "m", "input_mtok": 1e300}]', "'input_mtok' must be a number from 0 to"),
        ('[{"model": "m", "input": 1}]', "unknown field(s) ['input']"),
        ("not json", "is not JSON"),
    ],
)
def test_bad_price_files_are_one_line_errors(tmp_path, content, says):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(PriceFileError) as info:
        load_price_file(path)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_the_collector_takes_a_price_file_and_refuses_a_bad_one(tmp_path):
    from click.testing import CliRunner

    from otel_threads.cli import main as cli

    bad = tmp_path / "bad.json"
    bad.write_text("[{}]")
    result = CliRunner().invoke(
        cli, ["collect", "--db", str(tmp_path / "x.duckdb"), "--prices", str(bad)]
    )
    assert result.exit_code == 2 and "--prices" in result.output and "'model'" in result.output
    assert load_price_file(_write(tmp_path, [{"model": "x", "output_mtok": 1}])) == [
        PriceEntry("x", output_mtok=1.0)
    ]


def _write(tmp_path, entries) -> str:
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(entries))
    return str(path)


@pytest.mark.parametrize(
    "extra",
    [
        {"gen_ai.usage.cost": "0.5"},  # OpenLIT
        {"llm.cost.total": "0.5"},  # OpenInference
        {"langfuse.observation.cost_details": json.dumps({"input": 0.2, "total": 0.5})},
    ],
)
def test_each_producers_cost_attribute_wins(store, extra):
    store.insert(llm_span(0, "t", "openai", "gpt-4o", None, (100, 10, None, None), extra))
    store.derive_all()
    assert store.rows("SELECT cost_usd FROM llm_calls") == [(0.5,)]
    assert store.rows("SELECT cost_usd FROM threads") == [(0.5,)]


@pytest.mark.parametrize("bad", ["nan", "inf", "-1", "1e300"])
def test_a_producers_cost_that_is_no_cost_falls_back_to_the_price(store, bad):
    """(NaN or an overflow summed into a turn would set its trace aside)"""
    store.insert(
        llm_span(0, "t", "openai", "gpt-4o", None, (100, 10, None, None), {"llm.cost.total": bad})
    )
    store.derive_all()
    want = expected("openai", "gpt-4o", None, (100, 10, None, None))
    assert store.rows("SELECT cost_usd FROM llm_calls") == [(pytest.approx(want),)]
    assert store.rows("SELECT cost_usd FROM threads") == [(pytest.approx(want),)]
    assert store.rows("SELECT count(*) FROM derive_errors") == [(0,)]


def test_a_price_file_wins_for_the_request_model_of_a_dated_answer(store, tmp_path):
    """gpt-4o asked, gpt-4o-2024-08-06 answered: the file's gpt-4o price applies (before
    the genai-prices price of the dated name), and changing it re-derives that turn."""
    store.insert(
        llm_span(0, "t", "openai", "gpt-4o", "gpt-4o-2024-08-06", (1_000_000, 0, None, None))
    )
    store.derive_all()
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"model": "gpt-4o", "input_mtok": 2.0, "output_mtok": 8.0}]))
    assert reprice(store.con, load_price_file(path)) == 1
    store.derive_all()
    assert store.rows("SELECT cost_usd FROM threads") == [(2.0,)]
    store.assert_kept_equals_scratch()


def test_cached_tokens_past_the_input_never_make_a_cost_negative(store):
    store.insert(llm_span(0, "t", "openai", "gpt-4o", None, (10, 0, 500, None)))
    store.derive_all()
    (cost,) = store.rows("SELECT cost_usd FROM llm_calls")[0]
    assert cost is not None and cost >= 0


def test_a_collector_prices_with_its_file_and_forgets_it_without(tmp_path):
    """collect --prices FILE: the file's price costs what the collector stores (over real
    OTLP); restarted without it, the same thread is costed by genai-prices again."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from otel_threads import ThreadSpanProcessor, thread
    from otel_threads.collector import Collector, Config
    from otel_threads.collector.config import SETTINGS

    db = str(tmp_path / "p.duckdb")
    prices = _write(tmp_path, [{"model": "gpt-4o-mini", "input_mtok": 1000, "output_mtok": 0}])
    parse = next(s.parse for s in SETTINGS if s.name == "prices")
    config = Config(parse_workers=0, db=db, grpc=("127.0.0.1", 0), http=None, api=None)
    c = Collector(Config(**{**config.__dict__, "prices": parse(prices)}))
    c.start()
    try:
        provider = TracerProvider()
        provider.add_span_processor(ThreadSpanProcessor())
        exporter = OTLPSpanExporter(endpoint=c.endpoints.grpc, insecure=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 0,
        }
        with thread("priced"), provider.get_tracer("t").start_as_current_span("turn"):
            with provider.get_tracer("t").start_as_current_span("chat", attributes=attrs):
                pass
        provider.shutdown()
        assert c.store.sync(60)
        with c.store.cursor() as cur:
            assert cur.execute("SELECT cost_usd FROM threads").fetchall() == [(1.0,)]
    finally:
        c.stop()
    c = Collector(config)  # no price file now
    c.start()
    try:
        assert c.store.sync(60)
        want = expected("openai", "gpt-4o-mini", None, (1000, 0, None, None))
        with c.store.cursor() as cur:
            assert cur.execute("SELECT cost_usd FROM threads").fetchall() == [
                (pytest.approx(want),)
            ]
    finally:
        c.stop()
