"""The `otel-threads` command line (click).

Reading commands (threads, show, sql, export) take ``--db PATH`` (default:
$OTEL_THREADS_DB or ./otel-threads.duckdb), ``--url URL`` of a collector's API, or
``--clickhouse URL`` of a store on ClickHouse; given a file that a running collector
holds, they ask that collector. `collect`, `serve` and `demo` live in
``otel_threads.collector``, imported only when one of them runs (`LAZY_COMMANDS`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import click

from otel_threads import __version__
from otel_threads.cli_filters import filter_options, thread_filter, window_options

#: Commands of their own modules (name: "module:attribute"), imported when one of them
#: runs: the library's own commands never load the collector's servers.
LAZY_COMMANDS = {
    "annotate": "otel_threads.cli_annotate:annotate",
    "clickhouse": "otel_threads.cli_clickhouse:clickhouse",
    "collect": "otel_threads.collector.cli:collect",
    "demo": "otel_threads.collector.demo:demo",
    "derive": "otel_threads.cli_clickhouse:derive",
    "eval": "otel_threads.cli_eval:eval_cmd",
    "prune": "otel_threads.cli_prune:prune_cmd",
    "serve": "otel_threads.collector.serve:serve",
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None and name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name].split(":")
            cmd = getattr(import_module(module), attribute)
        return cmd


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="otel-threads")
def main() -> None:
    """Threads (multi-turn LLM conversations) from OpenTelemetry traces.

    \b
    Example:
        otel-threads collect --db chats.duckdb
        otel-threads threads --db chats.duckdb
    """
    if click.get_current_context().invoked_subcommand == "collect":
        # before the collector's imports, as its commands are (LAZY_COMMANDS): the
        # process may start again (otel_threads.collector.allocator.exec_early)
        import_module("otel_threads.collector.allocator").exec_early(sys.argv[1:])


def _source(fn: Callable, clickhouse: bool = False) -> Callable:
    """--db and --url (and with ``clickhouse``, --clickhouse): where a command reads."""
    if clickhouse:
        fn = click.option(
            "--clickhouse",
            metavar="URL",
            help="A store on ClickHouse that derive workers keep: "
            "clickhouse://host:8123/otel or chdb:///path/to/folder.",
        )(fn)
    fn = click.option(
        "--url", metavar="URL", help="A collector's API, e.g. http://127.0.0.1:4319."
    )(fn)
    return click.option(
        "--db",
        metavar="PATH",
        help="DuckDB file [env OTEL_THREADS_DB; default ./otel-threads.duckdb].",
    )(fn)


def _reading_source(fn: Callable) -> Callable:
    """The reading commands' sources: --db, --url or --clickhouse."""
    return _source(fn, clickhouse=True)


def _client(db: str | None, url: str | None, clickhouse: str | None = None):
    from otel_threads.client import ThreadsClient
    from otel_threads.client_clickhouse import CLICKHOUSE_SCHEMES

    given = [flag for flag, v in (("--db", db), ("--url", url), ("--clickhouse", clickhouse)) if v]
    if len(given) > 1:
        raise click.UsageError(
            f"give one of --db, --url or --clickhouse, not {' and '.join(given)}"
        )
    if clickhouse and not clickhouse.startswith(CLICKHOUSE_SCHEMES):
        raise click.BadParameter(
            f"{clickhouse!r} is no ClickHouse URL: clickhouse://host:8123/otel or "
            "chdb:///path/to/folder",
            param_hint="--clickhouse",
        )
    return ThreadsClient(clickhouse or url or db)


def _no_store(path: str) -> str:
    """The error for a store file that is not there: where to look instead."""
    from otel_threads.store import DEFAULT_DB, DEMO_DB

    missing = f"no otel-threads database at {path!r}"
    if path == DEFAULT_DB and Path(DEMO_DB).is_file():
        # `otel-threads demo` keeps its own file: it replaces it on every run
        return f"{missing}; the demo wrote {DEMO_DB} here: add --db {DEMO_DB}"
    return (
        f"{missing}: start a collector that writes it (otel-threads collect --db {path}), "
        "or give --db the file yours writes"
    )


def _domain_errors(fn: Callable[[], Any]) -> Any:
    """``fn()``, with what can go wrong for a reader as one-line errors."""
    import duckdb

    from otel_threads.clickhouse.engine import EngineError
    from otel_threads.client import ThreadsClientError
    from otel_threads.store import StoreLockedError

    try:
        return fn()
    except FileNotFoundError as exc:
        if exc.filename:
            raise click.ClickException(_no_store(str(exc.filename))) from None
        raise click.ClickException(exc.args[0] if exc.args else str(exc)) from None
    except (StoreLockedError, ThreadsClientError, EngineError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except duckdb.Error as exc:  # what DuckDB says, on one line
        raise click.ClickException(" ".join(str(exc).split())) from None


def _json_out(payload: Any) -> None:
    from otel_threads.json_out import dumps  # times in UTC with a Z, as the API's

    click.echo(dumps(payload, indent=2))


@main.command("threads")
@_reading_source
@click.option(
    "--sort",
    "sorts",
    multiple=True,
    metavar="FIELD[:asc|:desc]",
    help="Sort field (repeatable): thread_id, turn_count, start_time, "
    "last_updated, p50_turn_duration_ms, p99_turn_duration_ms, llm_call_count, "
    "input_tokens, output_tokens, error_turn_count, fork_count, cost_usd. "
    "Default last_updated:desc.",
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@window_options
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def threads_cmd(
    db: str | None,
    url: str | None,
    clickhouse: str | None,
    sorts: tuple[str, ...],
    limit: int,
    offset: int,
    after: dt.datetime | None,
    before: dt.datetime | None,
    project: str | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """List threads, most recently updated first; the filters narrow them (all given
    must hold).

    \b
    Example:
        otel-threads threads --db chats.duckdb --sort turn_count:desc --limit 10
        otel-threads threads --url http://127.0.0.1:4319 --after 2026-11-20T00:00 --json
        otel-threads threads --after 2d --sort turn_count:desc
        otel-threads threads --search refund --role user --tool lookup_order
        otel-threads threads --errors --model 'gpt-4o*' --attr tenant=acme
        otel-threads threads --clickhouse clickhouse://localhost:8123/otel --search refund
    """
    from otel_threads.query import SortBy, ThreadsQueryReq
    from otel_threads.render import thread_rows

    found = thread_filter(**filters)

    def run() -> Any:
        sort_by = []
        for s in sorts:
            name, _, direction = s.partition(":")
            sort_by.append(SortBy(name, direction or "desc"))
        req = ThreadsQueryReq(
            project_id=project,
            limit=limit,
            offset=offset,
            sort_by=sort_by or [SortBy()],
            sortable_datetime_after=after,
            sortable_datetime_before=before,
            filter=found,
        )
        return _client(db, url, clickhouse).threads_query(req)

    res = _domain_errors(run)
    if as_json:
        _json_out({"threads": res.threads, "total": res.total})
        return
    if not res.threads:
        if res.total:
            click.echo(f"no threads past --offset {offset} (of {res.total})")
        elif found is not None or project is not None:
            click.echo("no threads match these filters")
        else:
            click.echo("no threads")
        return
    click.echo(thread_rows(res.threads))
    shown = f"{offset + 1}-{offset + len(res.threads)}"
    click.echo(f"\n{shown} of {res.total} threads")


@main.command("show")
@click.argument("thread_id")
@_reading_source
@click.option(
    "--through",
    "through",
    metavar="TURN",
    help="Show the branch through this turn (after a fork) instead of the current one.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="text for a terminal, markdown to share the conversation, json for programs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (--format json).")
def show_cmd(
    thread_id: str,
    db: str | None,
    url: str | None,
    clickhouse: str | None,
    through: str | None,
    fmt: str,
    as_json: bool,
) -> None:
    """One thread: its turns and forks, then its transcript as a chat.

    The transcript follows the current branch: the one that ends at the newest turn.
    After a fork (a regenerated or edited turn), --through TURN shows the branch
    through that turn.

    \b
    Example:
        otel-threads show support_thread_42 --db chats.duckdb
        otel-threads show support_thread_42 --through 00f067aa0ba902b7
        otel-threads show support_thread_42 --format markdown > thread.md
    """
    from otel_threads.client import ThreadNotFoundError
    from otel_threads.markdown import thread_markdown
    from otel_threads.render import thread_detail

    def run() -> Any:
        try:
            return _client(db, url, clickhouse).thread(thread_id, through_turn=through)
        except ThreadNotFoundError as exc:
            raise ValueError(f"{exc}: otel-threads threads lists the threads there") from None

    detail = _domain_errors(run)
    if as_json or fmt == "json":
        _json_out(detail)
    elif fmt == "markdown":
        click.echo(thread_markdown(detail), nl=False)
    else:
        click.echo(thread_detail(detail))


@main.command("export")
@click.argument("directory", metavar="DIR")
@_reading_source
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "jsonl"]),
    default="parquet",
    show_default=True,
    help="File format of each view.",
)
@window_options
@filter_options
def export_cmd(
    directory: str,
    db: str | None,
    url: str | None,
    clickhouse: str | None,
    fmt: str,
    after: dt.datetime | None,
    before: dt.datetime | None,
    project: str | None,
    **filters: Any,
) -> None:
    """Write the views (threads, turns, llm_calls, messages, transcript, annotations) of the
    threads the filters select into DIR, one file per view (DIR/<view>.<format>,
    replaced if there). Works whether a collector holds the store or not.

    \b
    Example:
        otel-threads export out/ --db chats.duckdb
        otel-threads export refunds/ --search refund --format jsonl
        duckdb -c "SELECT count(*) FROM 'out/turns.parquet'"
    """
    from otel_threads.export import export
    from otel_threads.query import ThreadsQueryReq

    found = thread_filter(**filters)

    def run() -> Any:
        req = ThreadsQueryReq(
            project_id=project,
            sortable_datetime_after=after,
            sortable_datetime_before=before,
            filter=found,
        )
        if clickhouse and not (db or url):
            raise ValueError(
                "export reads a DuckDB file or a collector's API; on ClickHouse, select the "
                "views in ClickHouse's own formats (clickhouse-client: "
                "SELECT * FROM turns FORMAT Parquet)"
            )
        return export(_client(db, url, clickhouse).arrow, directory, req, fmt)

    counts = _domain_errors(run)
    for view, rows in counts.items():
        click.echo(f"{Path(directory) / f'{view}.{fmt}'}: {rows} rows")


@main.command("sql")
@click.argument("query")
@_reading_source
@click.option("--json", "fmt", flag_value="json", help="Print JSON (a list of objects).")
@click.option("--csv", "fmt", flag_value="csv", help="Print CSV.")
def sql_cmd(
    query: str, db: str | None, url: str | None, clickhouse: str | None, fmt: str | None
) -> None:
    """Run one read-only SQL statement over the store (tables and views), in DuckDB's SQL
    (ClickHouse's with --clickhouse, or --url of otel-threads serve).

    \b
    Example:
        otel-threads sql "SELECT thread_id, turn_count FROM threads ORDER BY turn_count DESC"
        otel-threads sql "FROM transcript WHERE thread_id = 'support_thread_42'" --csv
        otel-threads sql "SELECT count() FROM turns" --clickhouse chdb:///var/lib/otel-threads
    """
    from otel_threads.render import table

    columns, rows = _domain_errors(lambda: _client(db, url, clickhouse).sql(query))
    if fmt == "json":
        _json_out([dict(zip(columns, r, strict=True)) for r in rows])
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
    else:
        click.echo(table(columns, rows))
        click.echo(f"\n{len(rows)} row{'s' if len(rows) != 1 else ''}")


if __name__ == "__main__":  # pragma: no cover
    main()
