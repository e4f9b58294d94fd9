"""`otel-threads clickhouse init` and `otel-threads derive`: threads on ClickHouse.

The OpenTelemetry Collector's clickhouseexporter writes the spans and logs; `init`
creates what otel-threads adds beside them, and `derive` keeps the derived tables
current (otel_threads.clickhouse.worker). Needs the [clickhouse] extra.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

URL_HELP = "clickhouse://[user[:password]@]host[:port][/database] or chdb:///path/to/folder."


def engine_for(url: str) -> Any:
    """The engine ``url`` names, or a one-line error."""
    from otel_threads.clickhouse.engine import EngineError, connect_engine

    try:
        return connect_engine(url)
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("clickhouse")
def clickhouse() -> None:
    """Threads on ClickHouse, fed by the OpenTelemetry Collector's clickhouseexporter.

    \b
    Example:
        otel-threads clickhouse init --url clickhouse://localhost:8123/otel
        otel-threads derive --clickhouse clickhouse://localhost:8123/otel
    """


@clickhouse.command("init")
@click.option("--url", required=True, metavar="URL", help=URL_HELP)
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Print the statements instead of running them (to adapt for a cluster: ON "
    "CLUSTER, Replicated engines).",
)
def init(url: str, print_only: bool) -> None:
    """Create the tables otel-threads adds (arrivals, links, derived tables and views), and
    the exporter's otel_traces / otel_logs when they are missing. Running it again
    changes nothing."""
    from otel_threads.clickhouse.engine import EngineError, database_of, quote_name
    from otel_threads.clickhouse.schema import init_schema, schema_statements

    if print_only:
        try:
            database = database_of(url)
        except EngineError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"CREATE DATABASE IF NOT EXISTS {quote_name(database)};")
        click.echo(f"USE {quote_name(database)};")
        for statement in schema_statements(database):
            click.echo(f"{statement};")
        return
    engine = engine_for(url)
    try:
        init_schema(engine)
    except EngineError as exc:
        raise click.ClickException(f"{engine.url}: {exc}") from None
    finally:
        engine.close()
    click.echo(f"{engine.url}: ready (database {engine.database})")


@click.command("derive")
@click.option("--clickhouse", "url", required=True, metavar="URL", help=URL_HELP)
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    metavar="I/N",
    help="Derive share I of N of the threads (one worker per share, I from 0).",
)
@click.option("--once", is_flag=True, help="Derive what has arrived, then exit.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to look for new arrivals.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Leave arrivals younger than this for the next look (ClickHouse may show an "
    "acknowledged insert a moment later).",
)
@click.option(
    "--memory-limit",
    default=None,
    metavar="SIZE",
    help="Memory the worker's DuckDB may use, e.g. 2GB [default: DuckDB's].",
)
@click.option(
    "--prices",
    "prices_path",
    default=None,
    metavar="PATH",
    help="A JSON file of model prices, as `collect --prices` takes (give every worker the "
    "same); without it, the genai-prices data alone.",
)
def derive(url: str, shard: str, once: bool, poll: float, settle: float,
           memory_limit: str | None, prices_path: str | None) -> None:  # fmt: skip
    """Keep the derived tables on ClickHouse current (threads, turns, transcript,
    llm_calls, messages, span_threads): any number of workers, each on its own share.

    \b
    Example:
        otel-threads derive --clickhouse clickhouse://localhost:8123/otel --shard 0/2
        otel-threads derive --clickhouse chdb:///var/lib/otel-threads --once
    """
    import duckdb

    from otel_threads.clickhouse.engine import EngineError
    from otel_threads.clickhouse.worker import Worker, parse_shard
    from otel_threads.prices import PriceFileError, load_price_file

    try:
        index, count = parse_shard(shard)
    except ValueError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1], param_hint="--shard") from None
    try:
        prices = load_price_file(prices_path) if prices_path else None
    except (PriceFileError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--prices") from None
    engine = engine_for(url)
    stop = threading.Event()
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    try:
        worker = Worker(
            engine, (index, count), settle_s=settle, memory_limit=memory_limit, prices=prices
        )
    except EngineError as exc:
        raise click.ClickException(f"{engine.url}: {exc}") from None
    except duckdb.Error as exc:  # (its own DuckDB refused the memory limit)
        raise click.BadParameter(" ".join(str(exc).split()), param_hint="--memory-limit") from None
    try:
        total = worker.run(stop, poll, once)
    except EngineError as exc:
        raise click.ClickException(
            f"{engine.url}: {exc} (run `otel-threads clickhouse init --url URL` if tables "
            "are missing)"
        ) from None
    finally:
        worker.close()
        engine.close()
    click.echo(
        f"shard {index}/{count}: {total['arrivals']} arrivals, {total['traces']} traces "
        f"derived, {total['threads']} thread generations written, "
        f"{total['forwarded']} traces handed to other shards"
    )
