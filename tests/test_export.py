"""Sharing and exporting (issue 15): `otel-threads export DIR` writes the views of the
threads a filter selects (Parquet, CSV, JSON Lines) whether a collector holds the store
or not; `ThreadsClient.arrow` / `POST /arrow` answer read-only SQL as Arrow, whole or
refused; `show --format markdown` renders a thread to share."""

from __future__ import annotations

import csv
import json

import duckdb
import pyarrow.parquet as pq
import pytest
import test_thread_filters
from click.testing import CliRunner

from otel_threads import ThreadsClient, ThreadsQueryReq
from otel_threads.cli import main as cli
from otel_threads.export import VIEWS, export
from otel_threads.store.readonly_sql import run_readonly_arrow

REFUND = ["chat", "refund-error", "refund-tool"]  # threads with "refund" in a message


# (a collector serving the four threads, a copy of its file that no collector holds)
stores = test_thread_filters.served


def expected(path: str, view: str, threads: list[str]) -> list[tuple]:
    with duckdb.connect(path, read_only=True) as con:
        return con.execute(
            f"SELECT * FROM {view} WHERE thread_id = ANY(?) ORDER BY {VIEWS[view]}", [threads]
        ).fetchall()


def parquet_rows(path) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()


def test_export_on_a_file_and_through_a_collector_give_the_same_files(stores, tmp_path):
    c, copy = stores
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(tmp_path / "f"), "--db", copy, "--search", "refund"])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'f' / 'threads.parquet'}: 3 rows" in result.output
    for view in VIEWS:
        rows = parquet_rows(tmp_path / "f" / f"{view}.parquet")
        assert rows == expected(copy, view, REFUND), view
        assert rows or view == "messages"
    # the collector's file, through its API (the CLI finds the collector from the file)
    db = c.config.db
    result = runner.invoke(cli, ["export", str(tmp_path / "a"), "--db", db, "--search", "refund"])
    assert result.exit_code == 0, result.output
    for view in VIEWS:
        assert parquet_rows(tmp_path / "a" / f"{view}.parquet") == parquet_rows(
            tmp_path / "f" / f"{view}.parquet"
        ), view
    # the window takes the threads command's forms: an age too
    aged = runner.invoke(cli, ["export", str(tmp_path / "w"), "--db", copy, "--after", "3650d"])
    assert aged.exit_code == 0 and "threads.parquet: 4 rows" in aged.output, aged.output
    bad = runner.invoke(cli, ["export", str(tmp_path / "w"), "--db", copy, "--after", "yesterday"])
    assert bad.exit_code == 2 and "--after" in bad.output and "sortable" not in bad.output
    schema = pq.read_schema(tmp_path / "a" / "threads.parquet")
    assert "cost_usd" in schema.names and "thread_id" in schema.names


def test_no_match_still_writes_each_view_with_its_columns(stores, tmp_path):
    _, copy = stores
    counts = export(ThreadsClient(copy).arrow, tmp_path, ThreadsQueryReq(filter={"text": "zzz"}))
    assert counts == dict.fromkeys(VIEWS, 0)
    assert "turn_index" in pq.read_schema(tmp_path / "turns.parquet").names


def test_csv_and_jsonl_carry_lists_as_json_and_times_with_their_zone(stores, tmp_path):
    _, copy = stores
    client = ThreadsClient(copy)
    export(client.arrow, tmp_path / "c", ThreadsQueryReq(filter={"tool": "lookup_order"}), "csv")
    export(client.arrow, tmp_path / "j", ThreadsQueryReq(filter={"tool": "lookup_order"}), "jsonl")
    with open(tmp_path / "c" / "threads.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["thread_id"] == "refund-tool" and row["start_time"].endswith("Z")
    assert json.loads(row["models"]) == ["gpt-4o-2024-08-06"]
    lines = (tmp_path / "j" / "transcript.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert {r["thread_id"] for r in rows} == {"refund-tool"}
    calls = [r for r in rows if r["tool_calls"]]
    assert json.loads(calls[0]["tool_calls"])[0]["name"] == "lookup_order"
    (thread,) = [json.loads(x) for x in (tmp_path / "j" / "threads.jsonl").read_text().splitlines()]
    assert thread["last_updated"].endswith("Z")


def test_a_chunk_too_large_for_the_api_is_halved(stores, tmp_path, monkeypatch):
    import otel_threads.export as exporting

    _, copy = stores
    client = ThreadsClient(copy)
    asked: list[int] = []

    def fetch(sql, params):
        if params and isinstance(params[0], list):
            asked.append(len(params[0]))
            if len(params[0]) > 1:
                raise ValueError("the answer is larger than 256 MiB; narrow it")
        return client.arrow(sql, params)

    monkeypatch.setattr(exporting, "CHUNK_THREADS", 4)
    counts = export(fetch, tmp_path, ThreadsQueryReq())
    assert counts["threads"] == 4 and set(asked) == {4, 2, 1}
    assert parquet_rows(tmp_path / "turns.parquet") == expected(
        copy, "turns", ["chat", "quiet", "refund-error", "refund-tool"]
    )


def test_arrow_answers_whole_or_refuses(stores):
    c, copy = stores
    for client in (ThreadsClient(copy), ThreadsClient(c.endpoints.api)):
        table = client.arrow(
            "SELECT thread_id, turn_count FROM threads WHERE turn_count >= ? ORDER BY 1", [2]
        )
        assert table.to_pylist() == [{"thread_id": "chat", "turn_count": 3}]
        with pytest.raises(ValueError):
            client.arrow("DELETE FROM spans_raw")
    with pytest.raises(ValueError, match="one statement at a time"):
        ThreadsClient(c.endpoints.api).arrow("SELECT 1; SELECT 2")
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(100000)")
        assert len(run_readonly_arrow(con, "SELECT * FROM t WHERE i < ?", [10])) < 10_000
        with pytest.raises(ValueError, match="larger than 0 MiB"):
            run_readonly_arrow(con, "SELECT * FROM t", max_bytes=1000)
        with pytest.raises(ValueError, match="params must be a JSON list"):
            run_readonly_arrow(con, "SELECT 1", {"a": 1})


def test_show_as_markdown(stores):
    _, copy = stores
    result = CliRunner().invoke(cli, ["show", "refund-tool", "--db", copy, "--format", "markdown"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("# Thread `refund-tool`\n")
    assert "## Turn 1 · ok · " in text and "**user**" in text
    assert "> I want a REFUND for order 7" in text
    assert "calls **lookup_order**" in text and '"n": 1' in text
    assert "cost $" in text
    as_json = CliRunner().invoke(cli, ["show", "refund-tool", "--db", copy, "--format", "json"])
    assert json.loads(as_json.output)["thread"]["thread_id"] == "refund-tool"


def test_markdown_fences_hold_any_backticks():
    from otel_threads.markdown import _fence

    assert _fence("a ``` b") == "````\na ``` b\n````"
