"""The `otel-threads` command line (click)."""

from __future__ import annotations

import click

from otel_threads import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="otel-threads")
def main() -> None:
    """Threads (multi-turn LLM conversations) from OpenTelemetry traces.

    \b
    Example:
        otel-threads --version
    """


if __name__ == "__main__":  # pragma: no cover
    main()
