"""`ThreadFilter`: which threads a threads query keeps (`ThreadsQueryReq.filter`), the
same semantics for the Python API, ``POST /threads/query`` (JSON object ``"filter"``),
the command line (``otel-threads threads --search ...``) and the web page.

Every field is optional; all the fields given must hold. Each compiles to a condition
on the `threads` view (`ThreadFilter.where`), reading only public views: the thread's
own columns, its `turns`, its `transcript`, and ``threads_with_attribute`` (the table
macro over the attribute values each thread's spans carry, kept as they are derived).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["PARAMS", "ROLES", "ThreadFilter"]

#: The roles `ThreadFilter.role` may name.
ROLES = ("user", "assistant", "system", "tool")
#: Longest text, tool, model, user, project, service, attribute key or value a filter takes.
MAX_CHARS = 256
#: Longest `ThreadFilter.text`.
MAX_TEXT_CHARS = 1000
#: The span attributes that name a tool a span ran (GenAI semconv, OpenInference).
TOOL_ATTRIBUTES = ("gen_ai.tool.name", "tool.name")


def _boolean(raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValueError(raw)


_PARSE = {"text": str, "true or false": _boolean, "an integer": int, "a number": float}
#: URL parameter -> (ThreadFilter field, what it takes): the web page's list filters.
PARAMS = {
    "search": ("text", "text"),
    "role": ("role", "text"),
    "errors": ("has_error", "true or false"),
    "ended": ("ended", "true or false"),
    "tool": ("tool", "text"),
    "model": ("model", "text"),
    "user": ("user_id", "text"),
    "project": ("project", "text"),
    "service": ("service_name", "text"),
    "min_turns": ("min_turns", "an integer"),
    "max_turns": ("max_turns", "an integer"),
    "min_cost": ("min_cost_usd", "a number"),
    "max_cost": ("max_cost_usd", "a number"),
    "attr": ("attributes", "KEY=VALUE"),
    "annotation": ("annotation", "text"),
}


def _like_escaped(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _attribute_text(value: Any) -> str:
    """An attribute value as the store keeps it: a string as is, a number or boolean as
    JSON writes it (``true``, ``42``, ``0.5``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ValueError(
        f"attribute values must be strings, numbers or booleans, got {type(value).__name__}"
    )


@dataclass
class ThreadFilter:
    """Conditions a thread must meet (all that are given). Validated on construction
    (ValueError with what to give instead)."""

    #: a transcript message of the thread contains this text (case-insensitive)
    text: str | None = None
    #: limits `text` to messages of this role: user, assistant, system or tool
    role: str | None = None
    #: True: a turn of the thread failed; False: none did
    has_error: bool | None = None
    #: True: the thread has ended (`threads.ended`: its app said so, no turn since);
    #: False: it has not
    ended: bool | None = None
    #: the thread called this tool (an LLM's tool call, or a span that ran it)
    tool: str | None = None
    #: a model of the thread's LLM calls matches (``*`` matches any run of characters)
    model: str | None = None
    #: a turn of the thread names this user (``user.id``, ``enduser.id``, ...)
    user_id: str | None = None
    #: the thread's project
    project: str | None = None
    #: a span of the thread came from this service (resource ``service.name``)
    service_name: str | None = None
    min_turns: int | None = None
    max_turns: int | None = None
    #: the thread's known cost (USD) is at least / at most this; a thread of no known
    #: cost matches neither
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None
    #: {key: value}: for each, some span of the thread carries that attribute value
    #: (span or resource attribute; a number or boolean compares as JSON writes it)
    attributes: dict[str, Any] | None = None
    #: ``name`` or ``name=label``: the thread, one of its turns or spans carries an
    #: annotation of that name (and label); the `annotations` view
    annotation: str | None = None

    def __post_init__(self) -> None:
        if self.text is not None:
            if not isinstance(self.text, str) or not self.text.strip():
                raise ValueError("filter text must be a non-empty string")
            if len(self.text) > MAX_TEXT_CHARS:
                raise ValueError(f"filter text must be at most {MAX_TEXT_CHARS} characters")
        if self.role is not None:
            if self.role not in ROLES:
                raise ValueError(
                    f"filter role must be one of {', '.join(ROLES)}, got {self.role!r}"
                )
            if self.text is None:
                raise ValueError("filter role limits the text search: give text too")
        for name in ("has_error", "ended"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"filter {name} must be true or false, got {value!r}")
        for name in ("tool", "model", "user_id", "project", "service_name", "annotation"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, str) or not value or len(value) > MAX_CHARS
            ):
                raise ValueError(
                    f"filter {name} must be a string of 1 to {MAX_CHARS} characters, got {value!r}"
                )
        for name in ("min_turns", "max_turns"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63
            ):
                raise ValueError(f"filter {name} must be a non-negative integer, got {value!r}")
        for name in ("min_cost_usd", "max_cost_usd"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 1e15  # (NaN too)
            ):
                raise ValueError(f"filter {name} must be a non-negative number, got {value!r}")
        for low, high in (("min_turns", "max_turns"), ("min_cost_usd", "max_cost_usd")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"filter {low} ({a}) is more than {high} ({b})")
        if self.annotation is not None and not self.annotation.partition("=")[0].strip():
            raise ValueError(f"filter annotation takes NAME or NAME=LABEL, got {self.annotation!r}")
        if self.attributes is not None:
            if not isinstance(self.attributes, dict):
                raise ValueError("filter attributes must be an object of key: value")
            attributes = {}
            for key, value in self.attributes.items():
                if not isinstance(key, str) or not key or len(key) > MAX_CHARS:
                    raise ValueError(
                        f"filter attribute keys must be 1 to {MAX_CHARS} characters, got {key!r}"
                    )
                text = _attribute_text(value)
                if len(text) > MAX_CHARS:
                    raise ValueError(
                        f"filter attribute {key!r}: values longer than {MAX_CHARS} "
                        "characters are not kept, so none would match"
                    )
                attributes[key] = value
            self.attributes = attributes

    @classmethod
    def from_json(cls, body: Any) -> ThreadFilter:
        """From a JSON object (the HTTP API's ``"filter"``); unknown fields are an error."""
        if isinstance(body, ThreadFilter):
            return body
        if not isinstance(body, dict):
            raise ValueError("filter must be a JSON object")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise ValueError(f"unknown filter field(s) {unknown}; known: {known}")
        return cls(**body)

    @classmethod
    def from_params(cls, query: dict[str, list[str]]) -> ThreadFilter | None:
        """From URL parameters (the web page's list, `PARAMS`: the CLI's flags without
        their dashes), taking them out of ``query``; None when none is given."""
        fields: dict[str, Any] = {}
        for param, (name, kind) in PARAMS.items():
            values = query.pop(param, None)
            if not values:
                continue
            if name == "attributes":
                pairs = [v.partition("=") for v in values]
                bad = [k for k, sep, _ in pairs if not sep or not k]
                if bad:
                    raise ValueError(f"attr takes KEY=VALUE, got {values[0][:80]!r}")
                keys = [k for k, _, _ in pairs]
                if len(set(keys)) < len(keys):
                    raise ValueError("attr names a key twice: give each key once")
                fields[name] = {k: v for k, _, v in pairs}
                continue
            raw = values[-1]
            try:
                fields[name] = _PARSE[kind](raw)
            except ValueError:
                raise ValueError(f"{param} must be {kind}, got {raw[:40]!r}") from None
        return cls(**fields) if fields else None

    def to_json(self) -> dict[str, Any]:
        """The fields that are set (what `from_json` takes back)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def is_empty(self) -> bool:
        return not self.to_json()

    def scans(self) -> bool:
        """Whether a condition reads more than the thread's own row (its transcript, turns
        or attribute values): then a list query counts its matches in the same scan."""
        return any(
            v is not None
            for v in (self.text, self.tool, self.user_id, self.service_name, self.attributes)
        )

    def where(self) -> tuple[list[str], list[Any]]:
        """Conditions on the `threads` view (all must hold) and their parameters, in order."""
        conds: list[str] = []
        params: list[Any] = []

        def add(cond: str, *values: Any) -> None:
            conds.append(cond)
            params.extend(values)

        if self.text is not None:
            role = " AND role = ?" if self.role is not None else ""
            add(
                "thread_id IN (SELECT thread_id FROM transcript "
                f"WHERE contains(lower(content), lower(?)){role})",
                self.text,
                *([self.role] if self.role is not None else []),
            )
        if self.has_error is not None:
            conds.append("error_turn_count > 0" if self.has_error else "error_turn_count = 0")
        if self.ended is not None:
            conds.append("ended" if self.ended else "NOT coalesce(ended, false)")
        if self.tool is not None:
            by_span = " UNION ALL ".join(
                "SELECT thread_id FROM threads_with_attribute(?, ?)" for _ in TOOL_ATTRIBUTES
            )
            add(
                "thread_id IN (SELECT thread_id FROM transcript WHERE tool_calls IS NOT NULL "
                "AND list_contains(json_extract_string(tool_calls, '$[*].name'), ?) "
                f"UNION ALL {by_span})",
                self.tool,
                *[v for key in TOOL_ATTRIBUTES for v in (key, self.tool)],
            )
        if self.model is not None:
            pattern = _like_escaped(self.model).replace("*", "%")
            add("len(list_filter(models, lambda m: m ILIKE ? ESCAPE '\\')) > 0", pattern)
        if self.user_id is not None:
            add("thread_id IN (SELECT thread_id FROM turns WHERE user_id = ?)", self.user_id)
        if self.project is not None:
            add("project = ?", self.project)
        if self.service_name is not None:
            add(
                "thread_id IN (SELECT thread_id FROM threads_with_attribute('service.name', ?))",
                self.service_name,
            )
        if self.min_turns is not None:
            add("turn_count >= ?", self.min_turns)
        if self.max_turns is not None:
            add("turn_count <= ?", self.max_turns)
        if self.min_cost_usd is not None:
            add("cost_usd >= ?", self.min_cost_usd)
        if self.max_cost_usd is not None:
            add("cost_usd <= ?", self.max_cost_usd)
        if self.annotation is not None:
            name, sep, label = self.annotation.partition("=")
            add(
                "thread_id IN (SELECT thread_id FROM annotations WHERE name = ?"
                f"{' AND label = ?' if sep else ''})",
                name,
                *([label] if sep else []),
            )
        for key, value in (self.attributes or {}).items():
            add(
                "thread_id IN (SELECT thread_id FROM threads_with_attribute(?, ?))",
                key,
                _attribute_text(value),
            )
        return conds, params
