"""The README's quickstart works as written; every command documents itself; the
OpenTelemetry Collector configuration forwards what the README says it does."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import tomllib
import yaml
from click.testing import CliRunner

from otel_threads.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def quickstart() -> list[str]:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def steps(command: str) -> list[str]:
    return [part.strip() for part in command.split("&&")]


def extras(step: str) -> set[str]:
    """The extras a `pip install -e '.[a,b]'` step asks for."""
    m = re.fullmatch(r"pip install -e '?\.(?:\[([\w,-]+)\])?'?", step)
    assert m, f"not an editable install of this project: {step!r}"
    return set((m.group(1) or "").split(",")) - {""}


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    return out


def test_the_quickstart_is_two_commands_each_standing_alone():
    install_demo, install_test = quickstart()
    defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for command in (install_demo, install_test):
        venv, activate, install, *_ = steps(command)
        assert (venv, activate) == ("python3 -m venv .venv", ". .venv/bin/activate")
        assert extras(install) <= set(defined)
    assert steps(install_demo)[3:] == ["otel-threads demo"]
    # CI runs the README's test command (it only adds --quiet to pip)
    ci = (ROOT / ".ci" / "run").read_text().replace("pip install --quiet ", "pip install ")
    assert " && ".join(steps(install_test)[2:]) in ci


def test_the_quickstart_demo_runs_and_its_next_commands_work(tmp_path):
    demo = steps(quickstart()[0])[3:]
    done = subprocess.run(
        shlex.split(demo[0]),
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "otel-threads-demo.duckdb (in this folder)" in out
    assert re.search(r"support_thread_42\s+4\s", out)  # the threads table
    assert "user: Where is my order A-1042?" in out  # the transcript
    assert "tool [call_1]: ticket T-1 resolved" in out
    assert (tmp_path / "otel-threads-demo.duckdb").is_file()
    nexts = [
        line.strip() for line in out.split("Explore further:", 1)[1].splitlines() if line.strip()
    ]
    assert [n.split()[1] for n in nexts] == ["threads", "show", "sql", "collect"]
    for command in nexts:
        command = command.split("#", 1)[0].strip()
        if " collect " in f" {command} ":  # it serves until stopped: check it parses
            command += " --help"
        ran = subprocess.run(
            shlex.split(command),
            cwd=tmp_path,
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, f"{command}: {ran.stderr}"
        assert ran.stdout.strip()
    shown = subprocess.run(
        [
            str(BIN / "otel-threads"),
            "show",
            "support_thread_42",
            "--db",
            "otel-threads-demo.duckdb",
        ],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "4 turns" in shown and "Glad it arrived! Ticket T-1 is resolved." in shown


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    context = click.Context(cli)
    names = cli.list_commands(context)
    assert {"collect", "demo", "threads", "show", "sql"} <= set(names)
    for name in names:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        example = result.output.split("Example:", 1)
        assert len(example) == 2, f"otel-threads {name} --help shows no example"
        assert f"otel-threads {name}" in example[1], name


def test_the_otelcol_config_forwards_traces_and_logs_to_the_receiver():
    text = (ROOT / "otel_threads" / "collector" / "otelcol.yaml").read_text()
    config = yaml.safe_load(text)
    exporter = config["exporters"]["otlp/otel-threads"]
    assert exporter["endpoint"] == "127.0.0.1:14317" and exporter["tls"]["insecure"]
    assert "otel-threads collect --grpc 127.0.0.1:14317" in text  # how to start ours
    for signal in ("traces", "logs"):
        pipeline = config["service"]["pipelines"][signal]
        assert pipeline["receivers"] == ["otlp"]
        assert "otlp/otel-threads" in pipeline["exporters"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert "otel_threads/collector/otelcol.yaml" in README
