"""The examples run and produce the results their docstrings state."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from otel_threads.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]


def test_hello_thread_prints_one_thread_with_one_turn_and_its_child():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "hello_thread.py")],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    thread_id = re.search(r"thread id: (\S+)", out).group(1)
    assert re.fullmatch(r"[0-9a-f-]{36}", thread_id)
    turn = re.search(r"handle_message\s+(\{.*\})", out).group(1)
    child = re.search(r"call_model\s+(\{.*\})", out).group(1)
    assert f"'gen_ai.conversation.id': '{thread_id}'" in turn
    assert "'otel_threads.is_turn': True" in turn
    assert "is_turn" not in child
    turn_id = re.search(r"'otel_threads.turn_id': '([0-9a-f]{16})'", turn).group(1)
    assert f"'otel_threads.turn_id': '{turn_id}'" in child


def test_cli_has_help_with_an_example_and_a_version():
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    assert "0.1.0" in runner.invoke(cli, ["--version"]).output
