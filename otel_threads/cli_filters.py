"""The threads filters as command-line options (`filter_options`), shared by the
commands that select threads (``threads``, ``export``): one flag per field of
`otel_threads.filters.ThreadFilter`, the same semantics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["FILTER_PARAMS", "filter_options", "thread_filter"]

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
