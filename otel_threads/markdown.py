"""One thread as Markdown, for sharing (``otel-threads show ID --format markdown``): a
heading with the thread's figures, then the conversation along the branch shown, turn by
turn, each message under its role; tool calls and their results in code blocks."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from otel_threads.query import ThreadDetail, TurnSchema
from otel_threads.schemas import AnnotationSchema

__all__ = ["cost_text", "thread_markdown"]


def cost_text(cost: float | None, unpriced: int = 0) -> str:
    """'$0.0123' ('$0.0123+' when some calls have no known cost), '-' for none known."""
    if cost is None:
        return "-"
    text = f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"
    return text + ("+" if unpriced else "")


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _fence(text: str, lang: str = "") -> str:
    """A fenced code block that no backtick run inside ``text`` can close."""
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _status(turn: TurnSchema) -> str:
    if turn.is_running:
        return "running"
    return "error" if turn.has_error else "ok"


def _quoted(text: str) -> str:
    """Message text as Markdown shows it: its own line breaks kept, nothing it holds
    taken for a heading or a rule of ours."""
    return "\n".join(("> " + line) if line else ">" for line in text.splitlines() or [""])


def _tool_call(call: Any) -> str:
    if not isinstance(call, dict):
        return _fence(str(call))
    args = call.get("arguments")
    args_text = args if isinstance(args, str) else json.dumps(args, indent=2, ensure_ascii=False)
    return f"calls **{call.get('name') or '?'}**\n\n" + _fence(args_text or "", "json")


def _annotation(a: AnnotationSchema, turns: dict[str, TurnSchema]) -> str:
    turn = turns.get(a.turn_id) if a.turn_id else None
    line = f"- {f'turn {turn.turn_index}' if turn else 'thread'}: **{a.name}**"
    if a.label is not None:
        line += f"={a.label}"
    if a.score is not None:
        line += f" ({a.score:g})"
    line += f" · {a.source}"
    return line + (f": {' '.join(a.explanation.split())}" if a.explanation else "")


def thread_markdown(detail: ThreadDetail) -> str:
    t = detail.thread
    turns = {turn.turn_id: turn for turn in detail.turns}
    tokens = (t.input_tokens or 0) + (t.output_tokens or 0)
    lines = [
        f"# Thread `{t.thread_id}`",
        "",
        f"{t.turn_count} turns · started {_when(t.start_time)} · updated "
        f"{_when(t.last_updated)} · {tokens} tokens · cost "
        f"{cost_text(t.cost_usd, t.unpriced_call_count)}"
        + (f" · {t.error_turn_count} failed turns" if t.error_turn_count else "")
        + (f" · project {t.project}" if t.project else "")
        + (f" · user {t.user_id}" if t.user_id else ""),
    ]
    notes = [_annotation(a, turns) for a in detail.annotations]
    if notes:
        lines += ["", "Annotations:", "", *notes]
    if not detail.transcript:
        lines += ["", "_No messages were recorded in this thread._"]
    current: object = object()
    for m in detail.transcript:
        if m.turn_id != current:
            current = m.turn_id
            turn = turns.get(m.turn_id) if m.turn_id else None
            head = f"## Turn {turn.turn_index}" if turn else "## Turn"
            if turn is not None:
                head += f" · {_status(turn)} · {_when(turn.start_time)}"
            lines += ["", head]
        role = m.role or "unknown"
        label = f"**{role}**" + (f" (result of `{m.tool_call_id}`)" if m.tool_call_id else "")
        lines += ["", label]
        if m.content:
            lines += ["", _fence(m.content) if role == "tool" else _quoted(m.content)]
        for call in m.tool_calls or []:
            lines += ["", _tool_call(call)]
        if not m.content and not m.tool_calls:
            lines += ["", "_(empty)_"]
    return "\n".join(lines) + "\n"
