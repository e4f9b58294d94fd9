"""docs/cli.md documents every command and option of `otel-threads`: each command has
its own section, whose usage line and options table are what click says (filled by
``python docs/reference.py``). A command or option missing there fails here, and so
does one documented that no longer exists."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path

import click
import pytest

from otel_threads import cli

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sections(text: str) -> dict[str, str]:
    """Level-2 sections of a Markdown page: heading text -> body."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_command_and_option_is_documented_as_help_says_it(reference):
    text = CLI_MD.read_text(encoding="utf-8")
    problems = reference.cli_problems(text)
    found = {m.group("name"): m.group("body") for m in reference.BLOCK.finditer(text)}
    diffs = [  # (what differs, to tell a stale page from a help text that changed)
        line
        for name, (command, ctx) in reference.commands().items()
        if name in found
        for line in difflib.unified_diff(
            found[name].splitlines(),
            reference.options_block(command, ctx).splitlines(),
            "docs/cli.md",
            "--help",
            lineterm="",
        )
    ]
    assert not problems, "\n".join([*problems, *diffs, "run: python docs/reference.py"])


def test_the_check_holds_after_a_command_ran_on_its_own(reference):
    """click keeps a command's help option as the first context that asked made it: a
    command invoked on its own (as tests invoke `prune` and `collect`) has no -h there,
    while `otel-threads prune --help` shows -h, --help. The check says what a new
    process shows, whatever ran before it in this one."""
    from click.testing import CliRunner

    from otel_threads.cli_prune import prune_cmd

    assert CliRunner().invoke(prune_cmd, ["--help"]).exit_code == 0
    assert reference.cli_problems(CLI_MD.read_text(encoding="utf-8")) == []


def test_each_command_has_a_section_of_its_own(reference):
    found = sections(CLI_MD.read_text(encoding="utf-8"))
    for name, (_, ctx) in reference.commands().items():
        heading = f"`{ctx.command_path}`"
        assert heading in found, f"docs/cli.md has no section '## {heading}'"
        body = found[heading]
        assert f"<!-- options: {name} -->" in body, f"{heading}: its options block is elsewhere"
        assert len(body.split("<!-- options:", 1)[0].split()) >= 5, f"{heading}: say what it does"
    # the index at the top links every section
    index = CLI_MD.read_text(encoding="utf-8").split("\n## ", 1)[0]
    for name in reference.commands():
        if name != reference.GROUP:
            assert f"(#otel-threads-{name})" in index, name


def test_an_undocumented_option_or_command_fails(reference, monkeypatch):
    text = CLI_MD.read_text(encoding="utf-8")
    threads = cli.main.get_command(click.Context(cli.main), "threads")
    monkeypatch.setattr(
        threads, "params", [*threads.params, click.Option(["--new-flag"], help="New.")]
    )
    monkeypatch.setitem(cli.LAZY_COMMANDS, "frobnicate", "otel_threads.collector.demo:demo")
    problems = reference.cli_problems(text)
    assert "docs/cli.md: the options of `otel-threads threads` are out of date" in problems
    assert any("no block <!-- options: frobnicate -->" in p for p in problems), problems
    monkeypatch.undo()
    stale = text.replace("<!-- options: sql -->", "<!-- options: sqlite -->")
    assert reference.cli_problems(stale) == [
        "docs/cli.md has no block <!-- options: sql --> for `otel-threads sql`",
        "docs/cli.md documents `sqlite`, which is no command",
    ]


def test_the_generated_cells_hold_no_markup(reference):
    assert reference._cell("spill to <db>.tmp; * wildcard | a\\b") == (
        "spill to \\<db>.tmp; \\* wildcard \\| a\\\\b"
    )
