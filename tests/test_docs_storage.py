"""docs/storage.md describes the store as a new one holds it: every table, view and
table macro is named, each column table is exactly the columns (and types) DESCRIBE
gives, in order, and the migrations listed are the migration files. A view, column or
migration added without docs fails here, and so does a documented one that is gone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORAGE_MD = ROOT / "docs" / "storage.md"
#: What users query: each must have a column table, not just a mention.
PUBLIC = {
    "threads",
    "turns",
    "forks",
    "unresolved_turns",
    "spans",
    "span_threads",
    "llm_calls",
    "messages",
    "transcript",
    "transcript_branches",
    "turn_io",
    "branch_through",
    "threads_with_attribute",
    "logs",
    "derive_errors",
    "rejected_turns",
}


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def store(reference, tmp_path_factory):
    con = reference.new_store(tmp_path_factory.mktemp("store"))
    yield con
    con.close()


@pytest.fixture(scope="module")
def text():
    return STORAGE_MD.read_text(encoding="utf-8")


def test_storage_md_documents_the_store_as_it_is(reference, store, text):
    problems = reference.storage_problems(text, store)
    assert not problems, "\n".join(problems)


def test_what_users_query_has_its_columns_documented(reference, store, text):
    sections = reference.documented(text)
    assert set(reference.catalog(store)) >= PUBLIC
    for name in sorted(PUBLIC):
        assert sections.get(name), f"docs/storage.md: `{name}` needs its column table"


def test_spans_raw_has_the_columns_of_spans_as_documented(reference, store, text):
    assert "the columns of [`spans`](#spans)" in text
    assert "One more column, `trace_n`" in text  # (the number it is indexed by)
    spans = reference.describe(store, "spans")
    assert reference.describe(store, "spans_raw") == [*spans, ("trace_n", "BIGINT")]


def test_a_change_to_the_store_or_the_page_is_caught(reference, store, text):
    # a column the page does not have (as when a view gains one), or has no more
    dropped = text.replace("| `fork_count` | BIGINT | its forks (rows of `forks`) |\n", "", 1)
    assert dropped != text
    problems = reference.storage_problems(dropped, store)
    assert len(problems) == 1 and "column table of `threads`" in problems[0], problems
    assert "| `fork_count` | BIGINT |  |" in problems[0]  # the rows to paste
    # a type that is not the column's
    retyped = text.replace(
        "| `turn_count` | BIGINT | its turns,", "| `turn_count` | INTEGER | its turns,"
    )
    assert "column table of `threads`" in reference.storage_problems(retyped, store)[0]
    # a view the page does not name, and a section for a view that is gone
    renamed = text.replace("### `turn_io`", "### `turn_outputs`")
    assert reference.storage_problems(renamed, store) == [
        "docs/storage.md does not name the view `turn_io`: give it a section "
        "(python docs/reference.py columns turn_io) or list it under Internal views",
        "docs/storage.md documents `turn_outputs`, which is no table, view or macro",
    ]
    # an internal list naming what is gone, or what has a section of its own
    listed = text.replace("- `turn_facts` (what", "- `turn_facts`, `turns`, `turn_steps` (what")
    assert reference.storage_problems(listed, store) == [
        "docs/storage.md lists `turn_steps` as internal, which is no table or view",
        "docs/storage.md lists `turns` as internal, and gives it a section",
    ]
    # a migration left out of the list
    unlisted = text.replace("| `0014_cost` |", "| 0014 cost |")
    assert "lists the migrations" in reference.storage_problems(unlisted, store)[0]
