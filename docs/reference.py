"""The parts of the reference in docs/ that the code itself knows, so they cannot drift.

    python docs/reference.py                  # rewrite docs/cli.md's blocks; report drift
    python docs/reference.py columns threads  # a view's column rows, to paste in storage.md

- docs/cli.md: each command's usage line and options table, from click (the texts
  ``--help`` shows), between ``<!-- options: NAME -->`` and ``<!-- /options -->``.
  A new command needs a section with such a block (empty is fine); this fills it.
- docs/storage.md: the column tables are written by hand (each column's meaning);
  ``columns`` prints a view's or table's rows (name and type, as DESCRIBE gives them
  on a new store) to start from. Every table, view and table macro of a new store is
  either a section '### `name`' (a view's with its column table) or listed under an
  '### Internal ...' heading; the migrations table lists every migration file.

tests/test_docs_cli.py and tests/test_docs_storage.py hold the docs to the code with
these functions.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import click
import duckdb

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = ROOT / "docs" / "cli.md"
STORAGE_MD = ROOT / "docs" / "storage.md"
#: The name of the block of the `otel-threads` group itself (its own options).
GROUP = "otel-threads"
BLOCK = re.compile(
    r"(?P<open><!-- options: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /options -->)",
    re.S,
)


def commands() -> dict[str, tuple[click.Command, click.Context]]:
    """Every command of `otel-threads` by block name (`GROUP` for the group itself),
    with the context --help would show it in."""
    from otel_threads.cli import main

    root = click.Context(main, info_name="otel-threads", **main.context_settings)
    out: dict[str, tuple[click.Command, click.Context]] = {GROUP: (main, root)}
    for name in main.list_commands(root):
        command = main.get_command(root, name)
        assert command is not None, name
        ctx = click.Context(command, info_name=name, parent=root)
        out[name] = (command, ctx)
        if isinstance(command, click.Group):  # its subcommands: blocks "group-sub"
            for sub in command.list_commands(ctx):
                child = command.get_command(ctx, sub)
                assert child is not None, sub
                out[f"{name}-{sub}"] = (child, click.Context(child, info_name=sub, parent=ctx))
    return out


def _cell(text: str) -> str:
    """Text for a Markdown table cell: nothing in it read as markup."""
    for char in ("\\", "*", "<", "|"):
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


def options_block(command: click.Command, ctx: click.Context) -> str:
    """The usage line and the options table of one command, as --help says them."""
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines = [f"Usage: `{usage}`", "", "| option | what it does |", "|---|---|"]
    help_option = command.get_help_option(ctx)
    for param in command.get_params(ctx):
        if help_option is not None and param is help_option:
            # (click keeps a command's help option as the first context that asked made
            # it: a command invoked on its own, as tests do, has no -h; --help in a new
            # process shows the names this context gives)
            names = command.get_help_option_names(ctx)
            param = click.Option(names, is_flag=True, help=help_option.help)
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record is None:
            continue
        names, help_text = record
        lines.append(f"| `{names.replace('|', chr(92) + '|')}` | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


def cli_problems(text: str) -> list[str]:
    """What docs/cli.md (``text``) lacks or says wrongly about the commands."""
    found = {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}
    problems = []
    for name, (command, ctx) in commands().items():
        if name not in found:
            problems.append(
                f"docs/cli.md has no block <!-- options: {name} --> for `{ctx.command_path}`"
            )
        elif found[name] != options_block(command, ctx):
            problems.append(f"docs/cli.md: the options of `{ctx.command_path}` are out of date")
    for name in sorted(set(found) - set(commands())):
        problems.append(f"docs/cli.md documents `{name}`, which is no command")
    return problems


def write_cli(path: Path = CLI_MD) -> None:
    """Fill every options block of docs/cli.md from click."""
    known = commands()

    def fill(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in known:
            return m.group(0)
        return m.group("open") + options_block(*known[name]) + m.group("close")

    path.write_text(BLOCK.sub(fill, path.read_text(encoding="utf-8")), encoding="utf-8")


# -- the store ---------------------------------------------------------------------


def catalog(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every table, view and table macro of a store: name -> 'table', 'view' or 'macro'."""
    rows = con.execute(
        "SELECT table_name, 'table' FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT internal "
        "UNION ALL SELECT view_name, 'view' FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal "
        "UNION ALL SELECT DISTINCT function_name, 'macro' FROM duckdb_functions() "
        "WHERE database_name = current_database() AND function_type = 'table_macro'"
    ).fetchall()
    return dict(rows)


def describe(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    """(column, type) of a table, view or table macro (its arguments NULL), in order."""
    params = con.execute(
        "SELECT parameters FROM duckdb_functions() WHERE database_name = current_database() "
        "AND function_type = 'table_macro' AND function_name = ?",
        [name],
    ).fetchall()
    source = name if not params else f"{name}({', '.join(['NULL'] * len(params[0][0]))})"
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def new_store(directory: str | Path) -> duckdb.DuckDBPyConnection:
    """A new store in ``directory``: every migration applied, every view created."""
    from otel_threads.store import connect

    return connect(Path(directory) / "reference.duckdb")


def column_rows(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The rows of a column table for ``name``, meanings left to write."""
    return "\n".join(f"| `{c}` | {t} |  |" for c, t in describe(con, name))


_SECTION = re.compile(r"^### `(?P<name>\w+)`\n(?P<body>.*?)(?=^#{1,3} |\Z)", re.M | re.S)
_INTERNAL = re.compile(r"^### Internal \w+\n(?P<body>.*?)(?=^#{1,3} |\Z)", re.M | re.S)
_COLUMNS = "| column | type |"
_ROW = re.compile(r"^\| `(?P<column>\w+)` \| (?P<type>[^|]+?) \|", re.M)
_MIGRATION_ROW = re.compile(r"^\| `(\d{4}_\w+)` \|", re.M)


def documented(text: str) -> dict[str, list[tuple[str, str]] | None]:
    """The sections '### `name`' of docs/storage.md: name -> the (column, type) rows of
    its column table, or None when it has none."""
    out: dict[str, list[tuple[str, str]] | None] = {}
    for m in _SECTION.finditer(text):
        body = m.group("body")
        table = body.split(_COLUMNS, 1)[1] if _COLUMNS in body else None
        out[m.group("name")] = (
            None
            if table is None
            else [(r.group("column"), r.group("type").strip()) for r in _ROW.finditer(table)]
        )
    return out


def internal(text: str) -> set[str]:
    """The names listed under the '### Internal ...' headings of docs/storage.md."""
    return {n for m in _INTERNAL.finditer(text) for n in re.findall(r"`(\w+)`", m.group("body"))}


def storage_problems(text: str, con: duckdb.DuckDBPyConnection) -> list[str]:
    """What docs/storage.md (``text``) lacks or says wrongly about the store ``con`` holds
    (a new store: `new_store`)."""
    objects, sections, inner = catalog(con), documented(text), internal(text)
    problems = []
    for name, kind in sorted(objects.items()):
        rows = sections.get(name)
        if name not in sections and name not in inner:
            problems.append(
                f"docs/storage.md does not name the {kind} `{name}`: give it a section "
                f"(python docs/reference.py columns {name}) or list it under Internal {kind}s"
            )
        elif name in sections and rows is None and kind != "table":
            problems.append(f"docs/storage.md: the {kind} `{name}` has no column table")
        elif rows is not None and rows != describe(con, name):
            problems.append(
                f"docs/storage.md: the column table of `{name}` is not the {kind}'s; "
                f"its columns are:\n{column_rows(con, name)}"
            )
    for name in sorted(set(sections) - set(objects)):
        problems.append(f"docs/storage.md documents `{name}`, which is no table, view or macro")
    for name in sorted(inner - set(objects)):
        problems.append(f"docs/storage.md lists `{name}` as internal, which is no table or view")
    for name in sorted(inner & set(sections)):
        problems.append(f"docs/storage.md lists `{name}` as internal, and gives it a section")
    files = sorted(
        p.stem for p in (ROOT / "otel_threads" / "migrations").glob("*.sql") if p.stem[:4].isdigit()
    )
    listed = _MIGRATION_ROW.findall(text)
    if listed != files:
        problems.append(f"docs/storage.md lists the migrations {listed}, not {files}")
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["columns"]:
        with tempfile.TemporaryDirectory() as directory:
            con = new_store(directory)
            try:
                names = argv[1:] or sorted(catalog(con))
                for name in names:
                    print(f"### `{name}`\n\n| column | type | meaning |\n|---|---|---|")
                    print(column_rows(con, name) + "\n")
            finally:
                con.close()
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    write_cli()
    problems = cli_problems(CLI_MD.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as directory:
        con = new_store(directory)
        try:
            problems += storage_problems(STORAGE_MD.read_text(encoding="utf-8"), con)
        finally:
            con.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
