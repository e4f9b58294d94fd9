"""``--clickhouse-equivalence``: every store a scenario test leaves, derived on ClickHouse too.

With the option, each test of `EQUIVALENCE_MODULES` that wrote a DuckDB store in its
``tmp_path`` is followed by `ch_equivalence.check_store` on that store: its spans and logs
written to chDB as the clickhouseexporter would, derived by the derive worker, and every
derived view compared with the file's. Slow (a few seconds per store), so it is not part of
the default run:

    python -m pytest --clickhouse-equivalence tests/test_linked_turns.py tests/test_views_threads.py
"""

from __future__ import annotations

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
