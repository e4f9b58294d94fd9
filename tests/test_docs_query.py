"""docs/query.md keeps up with the query surface: every ThreadsClient method, request
field, sort field and filter (one section each, with its command-line flag and URL
parameter), every route of the API and OTLP/HTTP listeners, every GET parameter and
every metric is documented, and the row types are what the page says they are."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from pathlib import Path

import click
import pytest

from otel_threads import ThreadsClient, cli, filters
from otel_threads.collector import api, http_server
from otel_threads.query import (
    PAGE_SORT,
    SORT_FIELDS,
    ForkSchema,
    ThreadSchema,
    ThreadsQueryReq,
    TranscriptMessage,
    TurnSchema,
)

ROOT = Path(__file__).resolve().parents[1]
TEXT = (ROOT / "docs" / "query.md").read_text(encoding="utf-8")


def section(heading: str, text: str = TEXT) -> str:
    """The body under a heading line (exactly ``heading``), to the next heading of its
    level or higher."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    rest = re.search(rf"^#{{1,{len(level)}}} ", text[start:], re.M)
    return text[start : start + rest.start()] if rest else text[start:]


def subsections(body: str) -> dict[str, str]:
    """'### `name`' -> its body, within ``body``."""
    parts = re.split(r"^### `([^`]+)`$", body, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def table_names(body: str) -> list[str]:
    """The first column of a table's rows, where it is `code`."""
    return re.findall(r"^\| `([^`]+)` \|", body, re.M)


def test_every_client_method_has_its_section():
    methods = {n for n in dir(ThreadsClient) if n[0] != "_" and callable(getattr(ThreadsClient, n))}
    documented = set(subsections(section("## `ThreadsClient`")))
    assert methods == documented, (
        f"undocumented {methods - documented}, gone {documented - methods}"
    )


def test_every_request_field_and_sort_field_is_documented():
    fields = [f.name for f in dataclasses.fields(ThreadsQueryReq)]
    assert table_names(section("### `ThreadsQueryReq`")) == fields
    assert table_names(section("### Sort fields")) == list(SORT_FIELDS)


def test_every_filter_has_a_section_with_its_flag_and_url_parameter():
    body = section("## Filters")
    documented = subsections(body)
    fields = [f.name for f in dataclasses.fields(filters.ThreadFilter)]
    assert list(documented) == fields, "one '### `field`' section per ThreadFilter field"
    threads = cli.main.get_command(click.Context(cli.main), "threads")
    flags = {p.name: p.opts + p.secondary_opts for p in threads.params}
    flags["attributes"] = flags.pop("attrs")
    url = {field: param for param, (field, _) in filters.PARAMS.items()}
    for field, text in documented.items():
        assert set(flags[field]) <= set(re.findall(r"`(--[\w-]+)", text)), field
        assert f"`{url[field]}=" in text, f"{field}: its URL parameter {url[field]}="
    # and the URL parameters of the web page's list are all there
    ui = section("### `GET /ui/threads`")
    for param in [*filters.PARAMS, "limit", "offset", "sort", "after", "before", "q", "wait"]:
        assert f"`{param}`" in ui, param
    for field in PAGE_SORT:
        assert f"`{field}`" in ui or field in SORT_FIELDS, field


def _paths(module) -> set[str]:
    """The URL paths (and their pieces) a handler module names, file names aside."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("/")
        and "." not in node.value
    }


def test_every_route_is_in_the_routes_tables():
    routes = section("## The HTTP API").split("### Status codes", 1)[0]
    for path in _paths(api):
        assert path in routes, f"docs/query.md's routes table lacks {path}"
    otlp = section("## The OTLP receivers")
    for path in _paths(http_server):
        assert f"`POST {path}`" in otlp, path
    thread = section("### `GET /threads/{thread_id}`")
    assert set(table_names(thread)) == {*api._THREAD_PARAMS, "wait"}


def test_every_metric_is_in_the_metrics_table():
    source = Path(ROOT / "otel_threads" / "collector" / "metrics.py").read_text(encoding="utf-8")
    names = set(re.findall(r'"(otel_threads_\w+)"', source))
    assert names, "no metric names found in metrics.py"
    assert names == set(table_names(section("### `GET /metrics`")))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "reference.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    con = reference.new_store(tmp_path_factory.mktemp("store"))
    yield lambda view: [c for c, _ in reference.describe(con, view)]
    con.close()


def test_the_row_types_are_the_views_rows_as_said(store):
    def names(cls):
        return [f.name for f in dataclasses.fields(cls)]

    assert names(ThreadSchema) == store("threads")
    turns = [c for c in store("turns") if c not in ("user_id", "models")]
    assert sorted(names(TurnSchema)) == sorted([*turns, "first_input", "last_output", "error"])
    assert names(ForkSchema) == [*store("forks"), "parent_turn_index", "child_turn_indexes"]
    said = "`thread_id`, `seq`, `turn_id`, `role`, `content`, `tool_calls`, `tool_call_id`"
    assert said in TEXT
    assert ", ".join(f"`{n}`" for n in names(TranscriptMessage)) == said
