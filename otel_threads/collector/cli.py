"""`otel-threads collect` (also `python -m otel_threads.collector`): run the collector
until stopped."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from otel_threads.collector.allocator import AllocatorError, exec_with_mimalloc
from otel_threads.collector.config import SETTINGS, Config, ConfigError, Setting
from otel_threads.store import StoreLockedError

__all__ = ["collect", "settings_options"]


def settings_options(fn: Any, settings: tuple[Setting, ...] = SETTINGS) -> Any:
    """An option for each of ``settings`` (its flag, metavar and help, with its env var and
    default), None when not given (`Config.load` takes it from there)."""
    for s in reversed(settings):
        default = s.default or "none"
        fn = click.option(
            s.flag,
            s.name,
            default=None,
            metavar=s.metavar,
            help=f"{s.help} [env {s.env}; default: {default}]",
        )(fn)
    return fn


@click.command("collect", context_settings={"help_option_names": ["-h", "--help"]})
@settings_options
def collect(**values: str | None) -> None:
    """Receive OTLP (gRPC and HTTP, traces and logs) into one DuckDB file.

    Serves the query API, /healthz and /metrics too. Every option can also be set
    with its environment variable; a flag wins over the environment. Stops
    cleanly on Ctrl-C or SIGTERM with everything acknowledged on disk.

    HOST:PORT with port 0 picks a free port (the start-up line says which); a SIZE
    is bytes or KiB, MiB, GiB (16MiB); SECONDS are 30 or 7.5s; an AGE is 30d, 12h.

    \b
    Example:
        otel-threads collect --db chats.duckdb
        OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 python my_app.py
    """
    try:
        config = Config.load(values)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:  # (before any thread starts: the process may be started again)
        exec_with_mimalloc(config.allocator)
    except AllocatorError as exc:
        raise click.UsageError(str(exc)) from None
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import duckdb

    from otel_threads.collector.app import Collector  # heavy imports only once the config is good

    try:
        Collector(config).serve_forever()
    except (StoreLockedError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except duckdb.Error as exc:
        raise click.ClickException(f"cannot open the database {config.db!r}: {exc}") from None
