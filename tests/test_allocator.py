"""The collector's memory allocator (otel_threads.collector.allocator): `otel-threads
collect` starts its process again once with mimalloc preloaded (same PID, arguments and
streams), unless told ``--allocator system``; a command run in another program's
process (a test runner's) never does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from otel_threads.collector import allocator as malloc
from otel_threads.collector.cli import collect
from otel_threads.collector.config import Config, ConfigError

ROOT = Path(__file__).resolve().parents[1]

linux_only = pytest.mark.skipif(
    malloc.mimalloc_library() is None, reason="mimalloc is installed on Linux x86_64/aarch64"
)


def _serve(tmp_path: Path, env: dict[str, str]) -> tuple[int, str, str, str, list[str]]:
    """Start `python -m otel_threads.collector` with one decode worker, wait until it
    serves (its note names the PID it was started as), read what it runs on, stop it:
    (exit code, start-up line, its memory map, its environment, its children's maps)."""
    db = tmp_path / "a.duckdb"
    log = tmp_path / "collector.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    clean.pop("LD_PRELOAD", None)
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "otel_threads.collector", "--db", str(db)),
                *("--grpc", "127.0.0.1:0", "--http", "off", "--api", "127.0.0.1:0"),
                *("--parse-workers", "1", "--derive-workers", "1"),
            ],
            cwd=ROOT,
            env={**clean, **env},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if json.loads(Path(f"{db}.collector.json").read_text()).get("pid") == proc.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        children = [
            Path(f"/proc/{child}/maps").read_text()
            for task in Path(f"/proc/{proc.pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().decode(errors="replace")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    started = [line for line in log.read_text().splitlines() if "collector started" in line]
    assert len(started) == 1, log.read_text()  # (started again once, logging after)
    return code, started[0], maps, environ, children


@linux_only
def test_the_collector_runs_on_mimalloc_in_the_process_it_was_started_as(tmp_path: Path) -> None:
    code, started, maps, environ, workers = _serve(tmp_path, {})
    assert code == 0
    assert started.endswith("allocator=mimalloc"), started
    assert malloc.mimalloc_library() in maps
    assert len(workers) == 1  # the decode worker, which inherits it
    assert malloc.mimalloc_library() in workers[0]
    assert f"{malloc.PRELOADED_ENV}=1" in environ.split("\0")
    for name, value in malloc.MIMALLOC_OPTIONS.items():
        assert f"{name}={value}" in environ.split("\0")


@linux_only
def test_allocator_system_keeps_the_c_librarys_malloc(tmp_path: Path) -> None:
    code, started, maps, environ, workers = _serve(tmp_path, {"OTEL_THREADS_ALLOCATOR": "system"})
    assert code == 0
    assert started.endswith("allocator=system"), started
    assert len(workers) == 1
    assert "libmimalloc" not in maps + workers[0]
    assert malloc.PRELOADED_ENV not in environ


def test_a_bad_allocator_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.load({}, env={"OTEL_THREADS_ALLOCATOR": "tcmalloc"})
    assert str(caught.value) == (
        "--allocator (from OTEL_THREADS_ALLOCATOR): must be one of auto, mimalloc, system, "
        "got 'tcmalloc'"
    )
    assert Config().allocator == "auto"


class _Exec(Exception):
    """What the patched os.execve raises instead of replacing the test's process."""


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))
        raise _Exec

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.delenv(malloc.PRELOADED_ENV, raising=False)
    monkeypatch.setattr(malloc, "allocator", lambda: "system")
    monkeypatch.setattr(malloc, "mimalloc_library", lambda: "/lib/libmimalloc.so")
    return calls


def test_only_its_own_programs_start_themselves_again(
    execs: list[tuple], monkeypatch: pytest.MonkeyPatch
) -> None:
    package = Path(malloc.__file__).resolve().parents[1]
    for argv0 in (sys.argv[0], "/usr/bin/pytest", str(ROOT / "bench" / "soak.py")):
        monkeypatch.setattr(sys, "argv", [argv0])
        malloc.exec_with_mimalloc("auto")  # (returns: not one of ours)
    assert execs == []
    monkeypatch.setenv("LD_PRELOAD", "/lib/other.so")
    for argv0 in ("/venv/bin/otel-threads", str(package / "collector" / "__main__.py")):
        monkeypatch.setattr(sys, "argv", [argv0, "collect"])
        with pytest.raises(_Exec):
            malloc.exec_with_mimalloc("auto")
    assert len(execs) == 2
    for path, argv, env in execs:
        assert (path, argv) == (sys.executable, sys.orig_argv)
        assert env["LD_PRELOAD"] == "/lib/libmimalloc.so:/lib/other.so"
        assert env[malloc.PRELOADED_ENV] == "1"
        assert env["MIMALLOC_ARENA_EAGER_COMMIT"] == env["MIMALLOC_PURGE_DELAY"] == "0"


def test_it_starts_again_at_most_once(execs: list[tuple], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/otel-threads", "collect"])
    malloc.exec_with_mimalloc("system")
    monkeypatch.setenv(malloc.PRELOADED_ENV, "1")  # started again, and the preload did not take
    malloc.exec_with_mimalloc("auto")
    assert execs == []
    with pytest.raises(malloc.AllocatorError, match="did not load it"):
        malloc.exec_with_mimalloc("mimalloc")


def test_mimalloc_asked_for_and_missing_is_a_usage_error(
    execs: list[tuple], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(malloc, "mimalloc_library", lambda: None)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/otel-threads", "collect"])
    malloc.exec_with_mimalloc("auto")  # (not installed: the C library's)
    assert execs == []
    clean = {k: None for k in os.environ if k.startswith("OTEL_")}
    result = CliRunner().invoke(
        collect,
        ["--allocator", "mimalloc", "--db", str(tmp_path / "no-such-dir" / "x.duckdb")],
        env=clean,
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: --allocator mimalloc: mimalloc is not installed (pip install cmeel-mimalloc; "
        "Linux only)"
    )
    assert not (tmp_path / "no-such-dir").exists()


def test_the_early_start_again_reads_the_flag_over_the_environment(
    execs: list[tuple], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/otel-threads", "collect"])
    monkeypatch.setenv("OTEL_THREADS_ALLOCATOR", "system")
    malloc.exec_early(["collect", "--db", "x.duckdb"])
    malloc.exec_early(["collect", "--allocator=tcmalloc"])  # (collect's own check says so)
    assert execs == []
    with pytest.raises(_Exec):
        malloc.exec_early(["collect", "--allocator", "Auto"])
    monkeypatch.setattr(malloc, "mimalloc_library", lambda: None)
    malloc.exec_early(["collect", "--allocator=mimalloc"])  # (collect's own check says so)
    assert len(execs) == 1
