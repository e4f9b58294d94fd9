"""The suite's shared fixtures.

New stores: a writable open in the test process of a file that does not exist yet
starts from a copy of one store made for the session (`_new_stores_from_the_template`:
creating a store binds every view, ~0.45 s, some 300 times in the suite). Tests of
what a first open does are marked ``fresh_open``; collectors started as processes
create theirs as users' do.

``--clickhouse-equivalence``: every store a scenario test leaves, derived on ClickHouse too.

With the option, each test of `EQUIVALENCE_MODULES` that wrote a DuckDB store in its
``tmp_path`` is followed by `ch_equivalence.check_store` on that store: its spans and logs
written to chDB as the clickhouseexporter would, derived by the derive worker, and every
derived view compared with the file's. Slow (a few seconds per store), so it is not part of
the default run:

    python -m pytest --clickhouse-equivalence tests/test_linked_turns.py tests/test_views_threads.py
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: The scenario tests whose stores the option checks: semantics, linked turns, forks, real
#: producers and GenAI conventions, incremental derivation.
EQUIVALENCE_MODULES = {
    "test_views_threads",
    "test_linked_turns",
    "test_real_producers",
    "test_py_producers",
    "test_js_producers",
    "test_views_genai",
    "test_views_producer_quirks",
    "test_cross_service",
    "test_incremental_derive",
    "test_thread_end",
    "test_cost",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fresh_open: this test's new stores are created by DuckDB, not copied from the template",
    )


@pytest.fixture(scope="session")
def _store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new store, made once for the session: creating one binds every view (~0.45 s),
    opening a copy of one does not (~0.05 s), and the suite makes some 300."""
    from otel_threads.store.schema import connect

    path = tmp_path_factory.mktemp("template") / "template.duckdb"
    connect(path).close()  # closing checkpoints: the file alone is the store
    return path


@pytest.fixture(autouse=True)
def _new_stores_from_the_template(request: pytest.FixtureRequest, monkeypatch):
    """A writable open (in this process) of a file that does not exist yet copies the
    session's template there first; `connect` then finds it migrated, with its views.
    Tests marked ``fresh_open`` see DuckDB create the file."""
    if request.node.get_closest_marker("fresh_open"):
        yield
        return
    from otel_threads.store import schema

    template = request.getfixturevalue("_store_template")
    attach = schema._attach

    def from_template(db: str, row_group_size: int):
        new = not os.path.exists(db) and not os.path.exists(db + ".wal")
        if new and db != ":memory:" and os.path.isdir(os.path.dirname(db) or "."):
            try:
                shutil.copyfile(template, db)
            except OSError:  # a full disk, say: DuckDB meets it as it would have
                Path(db).unlink(missing_ok=True)
        return attach(db, row_group_size)

    monkeypatch.setattr(schema, "_attach", from_template)
    yield


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clickhouse-equivalence",
        action="store_true",
        help="also derive each scenario's store on ClickHouse (chDB) and compare the views",
    )


@pytest.fixture(autouse=True)
def _clickhouse_equivalence(request: pytest.FixtureRequest):
    """After the test (and its fixtures: collectors stopped, files closed), check its stores."""
    wanted = (
        request.config.getoption("--clickhouse-equivalence")
        and request.module.__name__.rsplit(".", 1)[-1] in EQUIVALENCE_MODULES
    )
    tmp_path = request.getfixturevalue("tmp_path") if wanted else None
    yield
    if tmp_path is None:
        return
    from ch_equivalence import check_store

    for path in sorted(tmp_path.rglob("*.duckdb")):
        check_store(str(path))
