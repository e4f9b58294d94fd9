"""`otel-threads clickhouse init` and `otel-threads derive` on chDB, through the real CLI."""

from __future__ import annotations

from chdb_store import chdb_url
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from stored_app import App

from otel_threads import ThreadsClient, thread
from otel_threads.cli import main
from otel_threads.clickhouse.engine import connect_engine
from otel_threads.clickhouse.exporter_rows import insert_as_exporter
from otel_threads.otlp.decode import decode_traces_protobuf


def test_init_then_derive_once_then_read(tmp_path):
    url = chdb_url("cli")
    runner = CliRunner()
    done = runner.invoke(main, ["clickhouse", "init", "--url", url])
    assert done.exit_code == 0, done.output
    again = runner.invoke(main, ["clickhouse", "init", "--url", url])  # changes nothing
    assert again.exit_code == 0, again.output
    app = App()
    for i in range(2):
        with thread("cli-1"), app.tracer.start_as_current_span(f"turn-{i}"):
            pass
    spans = decode_traces_protobuf(encode_spans(app.spans()).SerializeToString()).table
    insert_as_exporter(connect_engine(url), spans=spans)
    done = runner.invoke(main, ["derive", "--clickhouse", url, "--once", "--settle", "0"])
    assert done.exit_code == 0, done.output
    assert done.output == (
        "shard 0/1: 2 arrivals, 2 traces derived, 1 thread generations written, "
        "0 traces handed to other shards\n"
    )
    res = ThreadsClient(url).threads_query()
    assert [(t.thread_id, t.turn_count) for t in res.threads] == [("cli-1", 2)]


def test_bad_urls_and_shards_are_one_line_errors():
    runner = CliRunner()
    done = runner.invoke(main, ["derive", "--clickhouse", "http://x", "--once"])
    assert done.exit_code == 1
    assert done.output.strip() == (
        "Error: http://x: not a ClickHouse URL (clickhouse://host:8123/db or chdb:///path/to/store)"
    )
    done = runner.invoke(main, ["derive", "--clickhouse", chdb_url(), "--shard", "2/2"])
    assert done.exit_code == 2 and "Invalid value for --shard: I must be from 0 to N-1" in (
        done.output
    )


def test_init_prints_its_statements_for_a_cluster_to_adapt():
    done = CliRunner().invoke(
        main, ["clickhouse", "init", "--url", "clickhouse://u:pw@ch.example:8123/obs", "--print"]
    )
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[:2] == ["CREATE DATABASE IF NOT EXISTS `obs`;", "USE `obs`;"]
    for name in ("otel_traces", "otel_logs", "otel_threads_arrivals", "otel_threads_turns_gen"):
        assert f"CREATE TABLE IF NOT EXISTS {name}" in done.output or f"`{name}`" in done.output
    assert "pw" not in done.output


def test_the_otelcol_clickhouse_config_writes_the_tables_the_workers_read():
    from pathlib import Path

    import yaml

    from otel_threads.clickhouse.engine import DEFAULT_DATABASE

    path = Path(__file__).parents[1] / "otel_threads" / "collector" / "otelcol-clickhouse.yaml"
    text = path.read_text()
    config = yaml.safe_load(text)
    exporter = config["exporters"]["clickhouse"]
    assert exporter["database"] == DEFAULT_DATABASE
    assert (exporter["traces_table_name"], exporter["logs_table_name"]) == (
        "otel_traces",
        "otel_logs",
    )
    for signal in ("traces", "logs"):
        pipeline = config["service"]["pipelines"][signal]
        assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["clickhouse"]
    # the commands it says to run are the real ones
    assert "otel-threads clickhouse init --url" in text
    assert "otel-threads derive --clickhouse" in text


def test_a_bad_memory_limit_is_a_usage_error():
    done = CliRunner().invoke(
        main, ["derive", "--clickhouse", chdb_url(), "--once", "--memory-limit", "lots"]
    )
    assert done.exit_code == 2 and "Invalid value for --memory-limit" in done.output
    assert "Traceback" not in done.output


def test_a_server_that_cannot_be_reached_is_one_line_on_stderr():
    """No ClickHouse listens on the port: the command says so in one line (not the HTTP
    library's retry message, nor its log line)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port nothing listens on (bound, then let go)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"clickhouse://127.0.0.1:{port}/"
    done = subprocess.run(
        [sys.executable, "-m", "otel_threads.cli", "threads", "--clickhouse", url],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"Error: cannot reach ClickHouse at {url}: Connection refused\n"
