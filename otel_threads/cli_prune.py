"""`otel-threads prune`: delete old threads whole from a file no collector holds."""

from __future__ import annotations

import click

from otel_threads.cli import _domain_errors

__all__ = ["prune_cmd"]


@click.command("prune")
@click.option(
    "--before",
    required=True,
    metavar="TIME|AGE",
    help="Delete threads last active before TIME (ISO 8601, UTC) or older than "
    "AGE (30d, 12h, 90m).",
)
@click.option(
    "--db", metavar="PATH", help="DuckDB file [env OTEL_THREADS_DB; default ./otel-threads.duckdb]."
)
def prune_cmd(before: str, db: str | None) -> None:
    """Delete old threads whole (spans, log records, derived rows), reusing their space.

    A thread goes only whole; a trace that also serves a live thread keeps that
    thread's spans. Works on a file no collector holds: a running collector prunes
    its own file with `collect --retention AGE`.

    
    Example:
        otel-threads prune --before 30d --db chats.duckdb
        otel-threads prune --before 2026-11-01T00:00
    """
    from otel_threads.store import StoreLockedError, connect, default_db_path, read_holder
    from otel_threads.store.retention import parse_before, prune

    try:
        when = parse_before(before)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--before") from None
    path = default_db_path(db)
    holder = read_holder(path)
    if holder is not None:
        raise click.ClickException(
            f"{path} is held by an otel-threads collector, PID {holder.pid}: it prunes its "
            "own file with --retention (or stop it first)"
        )
    # a file that is no store is refused as it is (a writable open would make it one)
    _domain_errors(lambda: connect(path, read_only=True).close())
    try:
        con = connect(path)
    except StoreLockedError as exc:
        raise click.ClickException(f"{exc}. A running collector prunes with --retention") from None
    try:
        res = prune(con, when)
        con.execute("CHECKPOINT")  # the deleted rows' space is reused from here on
    finally:
        con.close()
    click.echo(
        f"deleted {res.threads} threads, {res.traces} whole traces, {res.spans} spans "
        f"and {res.logs} log records last active before {when.isoformat()} UTC"
    )
