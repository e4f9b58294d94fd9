"""The options that select threads on the command line, shared by ``threads`` and
``export``: the threads filters (`filter_options`, one flag per field of
`otel_threads.filters.ThreadFilter`, the same semantics) and the window and project
(`window_options`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["FILTER_PARAMS", "filter_options", "thread_filter", "window_options"]

_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--search", "text"),
        {"metavar": "TEXT", "help": "A message of the thread contains TEXT (any case)."},
    ),
    (
        ("--role", "role"),
        {
            "type": click.Choice(["user", "assistant", "system", "tool"]),
            "help": "Search only messages of this role.",
        },
    ),
    (
        ("--errors/--no-errors", "has_error"),
        {"default": None, "help": "Only threads with (or without) a failed turn."},
    ),
    (
        ("--ended/--no-ended", "ended"),
        {"default": None, "help": "Only threads that have (or have not) ended."},
    ),
    (("--tool", "tool"), {"metavar": "NAME", "help": "The thread called this tool."}),
    (
        ("--model", "model"),
        {"metavar": "MODEL", "help": "An LLM call used this model; * is a wildcard (gpt-4o*)."},
    ),
    (("--user", "user_id"), {"metavar": "USER", "help": "A turn names this user id."}),
    (("--service", "service_name"), {"metavar": "NAME", "help": "A span came from this service."}),
    (("--min-turns", "min_turns"), {"type": int, "metavar": "N", "help": "At least N turns."}),
    (("--max-turns", "max_turns"), {"type": int, "metavar": "N", "help": "At most N turns."}),
    (
        ("--min-cost", "min_cost_usd"),
        {"type": float, "metavar": "USD", "help": "Known cost at least USD."},
    ),
    (
        ("--max-cost", "max_cost_usd"),
        {"type": float, "metavar": "USD", "help": "Known cost at most USD."},
    ),
    (
        ("--attr", "attrs"),
        {
            "multiple": True,
            "metavar": "KEY=VALUE",
            "help": "A span of the thread carries this attribute value (repeatable: all must).",
        },
    ),
    (
        ("--annotation", "annotation"),
        {
            "metavar": "NAME[=LABEL]",
            "help": "The thread or one of its turns carries this annotation (e.g. thumbs=down).",
        },
    ),
)
#: The parameter names the options give the command.
FILTER_PARAMS = tuple(names[-1] for names, _ in _OPTIONS)


def filter_options(fn: Callable) -> Callable:
    """Add the filter options to a click command (its function takes `FILTER_PARAMS`)."""
    for names, kwargs in reversed(_OPTIONS):
        fn = click.option(*names, **kwargs)(fn)
    return fn


def thread_filter(project: str | None = None, **given: Any):
    """The `ThreadFilter` the options ask for (None for none); a bad one is a usage
    error that names the flag."""
    from otel_threads.filters import ThreadFilter

    attributes = {}
    for pair in given.pop("attrs", ()) or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--attr takes KEY=VALUE, got {pair!r}")
        if key in attributes:
            raise click.UsageError(f"--attr {key} given twice: a span has one value per key")
        attributes[key] = value
    fields = {k: v for k, v in given.items() if v is not None}
    if attributes:
        fields["attributes"] = attributes
    if project is not None:
        fields["project"] = project
    if not fields:
        return None
    try:
        return ThreadFilter(**fields)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _time(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """--after/--before: a time (ISO 8601, UTC unless it names a zone) or an age."""
    if value is None:
        return None
    from otel_threads.store.retention import parse_before

    try:
        return parse_before(value)
    except ValueError:
        raise click.BadParameter(
            "expected a time like 2026-11-20T00:00 or 2026-11-20 (ISO 8601, UTC unless it "
            f"ends in Z or +01:00) or an age like 2d or 12h (that long ago), got {value!r}"
        ) from None


def window_options(fn: Callable) -> Callable:
    """--after, --before and --project (the threads a command reads: threads, export)."""
    fn = click.option("--project", help="Only this project.")(fn)
    fn = click.option(
        "--before",
        metavar="TIME|AGE",
        callback=_time,
        help="Only threads started at or before TIME, or AGE ago.",
    )(fn)
    return click.option(
        "--after",
        metavar="TIME|AGE",
        callback=_time,
        help="Only threads active at or after TIME (ISO 8601, UTC: 2026-11-20T00:00) or "
        "AGE ago (2d, 12h, 90m).",
    )(fn)
