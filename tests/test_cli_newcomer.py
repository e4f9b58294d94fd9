"""The command line as a newcomer meets it: each mistake a new user made is one line
that says what to do (no traceback, no DuckDB catalog error, no internal name), and
the same answer whether the command reads a file or asks a collector."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result
from opentelemetry.trace import Status, StatusCode
from stored_app import App

from otel_threads import ThreadsClient, thread
from otel_threads.cli import main as cli
from otel_threads.collector.testing import running, sql
from otel_threads.store import connect


def one_line_error(result: Result) -> str:
    """The error a command ended with: handled (no traceback), one line."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output and "Catalog Error" not in result.output
    return errors[0]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def empty_store(path: Path) -> str:
    connect(str(path)).close()
    return str(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A collector with one thread of three turns: ok, failed, still running."""
    db = tmp_path_factory.mktemp("newcomer") / "served.duckdb"
    with running(db, http=None) as c:
        app = App()
        with thread("t1"):
            with app.tracer.start_as_current_span("ask"):
                pass
            with app.tracer.start_as_current_span("fail") as span:
                span.set_status(Status(StatusCode.ERROR, "boom"))
            with app.tracer.start_as_current_span("wait"):
                with app.tracer.start_as_current_span("step"):
                    pass
        app.send(c, ["ask", "fail", "step"])  # "wait" not exported: its turn runs
        assert sql(c, "SELECT count(*) FROM turns") == [(3,)]
        yield c


# 1, 2: a file that is not a store ---------------------------------------------------


READERS = [["threads"], ["show", "t1"], ["sql", "SELECT 1"], ["prune", "--before", "30d"]]


@pytest.mark.parametrize("command", READERS)
def test_a_duckdb_file_of_other_tables_is_not_a_store(tmp_path, command):
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE orders (id INTEGER)")
    error = one_line_error(run(*command, "--db", str(path)))
    assert str(path) in error and "not an otel-threads store" in error
    with duckdb.connect(str(path), read_only=True) as con:  # left as it was
        assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("orders",)]


@pytest.mark.parametrize("content", [b"hello\n", b""])
@pytest.mark.parametrize("command", READERS)
def test_a_file_that_is_not_duckdb_is_one_line(tmp_path, command, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    error = one_line_error(run(*command, "--db", str(path)))
    assert str(path) in error and "not a DuckDB file" in error


def test_a_folder_is_not_a_store(tmp_path):
    error = one_line_error(run("threads", "--db", str(tmp_path)))
    assert str(tmp_path) in error and "folder" in error


# 3, 4: SQL that is not one statement --------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", ";"])
def test_empty_sql_is_one_line_from_a_file_and_a_collector(tmp_path, served, text):
    db = empty_store(tmp_path / "s.duckdb")
    errors = {
        one_line_error(run("sql", text, "--db", db)),
        one_line_error(run("sql", text, "--url", served.endpoints.api)),
    }
    assert len(errors) == 1, errors
    assert "no SQL statement" in errors.pop()


def test_two_statements_are_refused_alike_from_a_file_and_a_collector(tmp_path, served):
    db = empty_store(tmp_path / "s.duckdb")
    errors = {
        one_line_error(run("sql", "SELECT 1; SELECT 2", "--db", db)),
        one_line_error(run("sql", "SELECT 1; SELECT 2", "--url", served.endpoints.api)),
        one_line_error(run("sql", "SELECT 1; SELECT 2", "--db", served.config.db)),  # held
    }
    assert len(errors) == 1, errors
    assert "one statement at a time" in errors.pop()
    ok = run("sql", "SELECT 1 AS one;", "--db", db)  # one statement, a trailing ;
    assert ok.exit_code == 0 and "1 row" in ok.output


# 5: the demo's file -------------------------------------------------------------------


def test_without_a_store_threads_names_the_demos_file_when_there_is_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OTEL_THREADS_DB", raising=False)
    error = one_line_error(run("threads"))
    assert "otel-threads.duckdb" in error and "otel-threads collect" in error
    empty_store(tmp_path / "otel-threads-demo.duckdb")  # what `otel-threads demo` writes
    for command in (["threads"], ["show", "support_thread_42"], ["sql", "SELECT 1"]):
        error = one_line_error(run(*command))
        assert "--db otel-threads-demo.duckdb" in error, error
    assert not (tmp_path / "otel-threads.duckdb").exists()
    assert run("threads", "--db", "otel-threads-demo.duckdb").exit_code == 0
    # a file named on purpose gets no hint about the demo
    error = one_line_error(run("threads", "--db", "mine.duckdb"))
    assert "mine.duckdb" in error and "demo" not in error


# 6: --after / --before ------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--after", "--before"])
def test_a_bad_time_names_the_flag_and_the_format(tmp_path, flag):
    db = empty_store(tmp_path / "s.duckdb")
    error = one_line_error(run("threads", "--db", db, flag, "yesterday"))
    assert flag in error and "2026-11-20T00:00" in error and "'yesterday'" in error
    assert "sortable_datetime" not in error


def test_after_takes_an_iso_time_with_a_zone_or_an_age(served):
    url = served.endpoints.api
    for after in ("2000-01-01T00:00:00Z", "2000-01-01", "7d"):
        out = run("threads", "--url", url, "--after", after, "--json")
        assert out.exit_code == 0 and json.loads(out.output)["total"] == 1, out.output
    assert json.loads(run("threads", "--url", url, "--before", "1d", "--json").output) == {
        "threads": [],
        "total": 0,
    }


# 7: collect on an address in use -------------------------------------------------------


@pytest.mark.parametrize("flag", ["--grpc", "--http", "--api"])
def test_collect_on_an_address_in_use_is_one_line_and_leaves_no_file(tmp_path, flag):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        listen = {"--grpc": "127.0.0.1:0", "--http": "off", "--api": "off", flag: address}
        db = tmp_path / "new.duckdb"
        args = ["--db", str(db), *[x for kv in listen.items() for x in kv]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        done = subprocess.run(
            [sys.executable, "-m", "otel_threads.cli", "collect", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert address in lines[0] and flag in lines[0] and "in use" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("taken_by", ["grpc", "http"])
def test_a_start_that_fails_after_the_check_removes_the_file_it_made(
    tmp_path, monkeypatch, taken_by
):
    """The port taken between the check and the listener's bind: the listener's own
    error, in the same words, and the file just made is gone."""
    from otel_threads.collector import Collector, Config
    from otel_threads.collector import app as collector_app

    monkeypatch.setattr(collector_app, "check_free", lambda address, flag: None)
    db = tmp_path / "new.duckdb"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = {"grpc": ("127.0.0.1", 0), "http": None, taken_by: taken.getsockname()}
        collector = Collector(Config(db=str(db), parse_workers=0, api=None, **listen))
        with pytest.raises(OSError, match=f"--{taken_by}\\): the address is in use"):
            collector.start()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_start_keeps_a_store_that_was_there(tmp_path):
    db = empty_store(tmp_path / "mine.duckdb")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        out = run("collect", "--db", db, "--grpc", address, "--http", "off", "--api", "off")
    assert "in use" in one_line_error(out)
    assert Path(db).is_file()


# 8: collect --help -----------------------------------------------------------------------


def test_collect_help_names_what_each_option_takes():
    out = run("collect", "--help").output
    assert "VALUE" not in out
    for option in (
        "--db PATH",
        "--grpc HOST:PORT",
        "--http HOST:PORT",
        "--api HOST:PORT",
        "--tls-cert PATH",
        "--max-request-bytes SIZE",
        "--memory-limit SIZE",
        "--client-timeout SECONDS",
        "--retention AGE",
    ):
        assert option in out, option
    assert "port 0 picks a free one" in " ".join(out.split())


# 9: the status of a turn -----------------------------------------------------------------


def test_show_says_ok_error_running_and_the_json_keeps_the_stored_status(served):
    url = served.endpoints.api
    out = run("show", "t1", "--url", url)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    header = next(line for line in lines if line.startswith("#"))
    rows = lines[lines.index(header) + 1 : lines.index(header) + 4]
    column = header.index("STATUS")
    assert [row[column:].split()[0] for row in rows] == ["ok", "error", "running"], out.output
    assert "UNSET" not in out.output
    turns = json.loads(run("show", "t1", "--url", url, "--json").output)["turns"]
    assert [t["status_code"] for t in turns[:2]] == ["UNSET", "ERROR"]


# 10: a thread that is not there ------------------------------------------------------------


def test_an_unknown_thread_is_the_same_documented_error_from_a_file_and_a_url(tmp_path, served):
    from otel_threads import ThreadNotFoundError, ThreadsClientError

    db = empty_store(tmp_path / "s.duckdb")
    for client in (ThreadsClient(db), ThreadsClient(served.endpoints.api)):
        for read in (client.thread, client.thread_page):
            with pytest.raises(ThreadNotFoundError) as caught:
                read("nope")
            err = caught.value
            assert isinstance(err, KeyError) and isinstance(err, LookupError)
            assert isinstance(err, ThreadsClientError)
            assert err.thread_id == "nope" and err.status == 404
            assert str(err).startswith("no thread 'nope'") and "\n" not in str(err)
    assert "ThreadNotFoundError" in (ThreadsClient.thread.__doc__ or "")
    for source in (["--db", db], ["--url", served.endpoints.api]):
        error = one_line_error(run("show", "nope", *source))
        assert "no thread 'nope'" in error and "otel-threads threads" in error


# 11: times in JSON carry their zone ----------------------------------------------------------


def _zoned(text: str) -> bool:
    return text.endswith("Z") and dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_json_times_carry_the_utc_zone_and_read_back_the_same(served):
    url = served.endpoints.api
    listed = json.loads(run("threads", "--url", url, "--json").output)["threads"][0]
    assert _zoned(listed["start_time"]) and _zoned(listed["last_updated"])
    shown = json.loads(run("show", "t1", "--url", url, "--json").output)
    assert all(_zoned(t["start_time"]) for t in shown["turns"])
    rows = json.loads(
        run("sql", "SELECT max(start_time) AS t FROM turns", "--url", url, "--json").output
    )
    assert _zoned(rows[0]["t"])

    def get(path: str, body: object = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            url + path, data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    assert _zoned(get("/threads/query", {})["threads"][0]["start_time"])
    assert _zoned(get("/ui/threads")["threads"][0]["last_updated"])
    detail = get("/threads/t1")
    assert _zoned(detail["thread"]["start_time"]) and _zoned(detail["turns"][0]["end_time"])
    turn = detail["turns"][0]["turn_id"]
    assert _zoned(get(f"/threads/t1/turns/{turn}/spans")["spans"][0]["start_time"])
    assert _zoned(get("/sql", {"sql": "SELECT max(end_time) AS t FROM turns"})["rows"][0][0])
    # the client reads them back as the store holds them: naive UTC
    stored = sql(served, "SELECT start_time, last_updated FROM threads")[0]
    (thread_row,) = ThreadsClient(url).threads_query().threads
    assert (thread_row.start_time, thread_row.last_updated) == stored
    assert ThreadsClient(url).thread("t1").turns[0].start_time.tzinfo is None
