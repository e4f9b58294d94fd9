"""The `otel-threads` command line (click)."""

from __future__ import annotations

from importlib.metadata import entry_points

import click

from otel_threads import __version__

#: Entry-point group through which other packages (the collector) add commands,
#: so that this package never imports them.
COMMANDS_GROUP = "otel_threads.commands"


class _Group(click.Group):
    def _plugins(self) -> dict[str, click.Command]:
        found = {}
        for ep in entry_points(group=COMMANDS_GROUP):
            found[ep.name] = ep
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None and name in (plugins := self._plugins()):
            cmd = plugins[name].load()
        return cmd


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="otel-threads")
def main() -> None:
    """Threads (multi-turn LLM conversations) from OpenTelemetry traces.

    \b
    Example:
        otel-threads collect --db chats.duckdb
    """


if __name__ == "__main__":  # pragma: no cover
    main()
