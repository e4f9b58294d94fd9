"""Plain-text rendering for the CLI: aligned tables, relative times, a chat transcript."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from otel_threads.markdown import cost_text
from otel_threads.query import ThreadDetail, ThreadSchema, TranscriptMessage, TurnSchema
from otel_threads.schemas import AnnotationSchema

__all__ = [
    "ago",
    "branches",
    "chat",
    "clip",
    "duration",
    "table",
    "thread_detail",
    "thread_rows",
    "turn_rows",
    "turn_status",
]


def clip(text: Any, width: int) -> str:
    """One line of at most ``width`` characters."""
    if text is None:
        return ""
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: max(0, width - 1)] + "…"


def ago(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """'12s ago', '5m ago', '3h ago', '2d ago' (stored times are naive UTC)."""
    if when is None:
        return "-"
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    secs = (now - when).total_seconds()
    if secs < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return f"{int(secs)}s ago" if secs >= 1 else "just now"


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    return f"{ms / 60_000:.1f}m"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """An aligned text table; columns in ``right`` are right-aligned."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    return "\n".join([line(list(headers)), *(line(r) for r in cells)])


def thread_rows(threads: Sequence[ThreadSchema], now: dt.datetime | None = None) -> str:
    headers = [
        "THREAD",
        "TURNS",
        "STARTED",
        "UPDATED",
        "P50",
        "P99",
        "TOKENS",
        "COST",
        "ERRORS",
        "FIRST INPUT",
    ]
    rows = [
        [
            clip(t.thread_id, 36),
            t.turn_count,
            ago(t.start_time, now),
            ago(t.last_updated, now) + (" (ended)" if t.ended else ""),
            duration(t.p50_turn_duration_ms),
            duration(t.p99_turn_duration_ms),
            (t.input_tokens or 0) + (t.output_tokens or 0),
            cost_text(t.cost_usd, t.unpriced_call_count),
            t.error_turn_count,
            clip(t.first_input, 40),
        ]
        for t in threads
    ]
    return table(headers, rows, right=(1, 4, 5, 6, 7, 8))


def turn_status(turn: TurnSchema) -> str:
    """What a person reads for a turn's status: running (no end time yet), error (a
    span of it failed), else ok. The stored ``status_code`` (UNSET, OK, ERROR: the turn
    span's own) stays as it is in the JSON."""
    if turn.is_running or turn.end_time is None:
        return "running"
    return "error" if turn.has_error or turn.status_code == "ERROR" else "ok"


def turn_rows(detail: ThreadDetail, now: dt.datetime | None = None) -> str:
    """The turns; in a thread with forks, a BRANCH column marks the turns of the branch
    shown (●) and the others (○), and where each fork is (⑂ N: N answers)."""
    forked = {f.parent_turn_id: f.child_count for f in detail.forks}
    on_branch = set(detail.branch)
    headers = ["#", "TURN", "STARTED", "DURATION", "STATUS", "SPANS", "LLM", "TOKENS", "NAME"]
    if forked:
        headers.insert(2, "BRANCH")
    rows = []
    for t in detail.turns:
        row: list[Any] = [
            t.turn_index,
            t.turn_id,
            ago(t.start_time, now),
            duration(t.duration_ms),
            turn_status(t),
            t.span_count,
            t.llm_call_count,
            (t.input_tokens or 0) + (t.output_tokens or 0),
            clip(t.name, 40),
        ]
        if forked:
            mark = "●" if t.turn_id in on_branch else "○"
            if t.turn_id in forked:
                mark += f" ⑂ {forked[t.turn_id]}"
            row.insert(2, mark)
        rows.append(row)
    right = (0, 4, 6, 7, 8) if forked else (0, 3, 5, 6, 7)
    return table(headers, rows, right=right)


def branches(detail: ThreadDetail, now: dt.datetime | None = None) -> str:
    """The forks, each with its competing turns and how to show each branch, and the
    turns whose links loop (bad data). Empty when there are neither."""
    index = {t.turn_id: t.turn_index for t in detail.turns}
    start = {t.turn_id: t.start_time for t in detail.turns}
    on_branch = set(detail.branch)
    lines = []
    for f in detail.forks:
        lines.append(
            f"fork after turn {index.get(f.parent_turn_id, '?')} "
            f"({f.parent_turn_id}): {f.child_count} answers"
        )
        for child in f.child_turn_ids:
            shown = "  ← shown" if child in on_branch else ""
            lines.append(
                f"  turn {index.get(child, '?')} ({child}), started "
                f"{ago(start.get(child), now)}: "
                f"otel-threads show {detail.thread.thread_id} --through {child}{shown}"
            )
    for t in detail.turns:
        if t.link_status == "cycle":
            lines.append(
                f"warning: turn {t.turn_index} ({t.turn_id}) names previous turn "
                f"{t.previous_turn_id}, and its links loop (bad data): it is placed "
                "by start time instead"
            )
    return "\n".join(lines)


def _tool_calls(calls: Any) -> list[str]:
    out = []
    for call in calls or []:
        if isinstance(call, dict):
            args = call.get("arguments")
            args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            out.append(f"{call.get('name') or '?'}({args_text})")
        else:
            out.append(str(call))
    return out


def chat(messages: Sequence[TranscriptMessage], turn_index: dict[str, int]) -> str:
    """The transcript as a chat, with a rule at every turn."""
    lines: list[str] = []
    current: object = object()
    for m in messages:
        if m.turn_id != current:
            current = m.turn_id
            label = f"turn {turn_index[m.turn_id]}" if m.turn_id in turn_index else "turn"
            lines.append(f"── {label} ({m.turn_id}) ──")
        role = m.role or "?"
        if role == "tool":
            who = f"tool [{m.tool_call_id}]" if m.tool_call_id else "tool"
            lines.append(f"{who}: {m.content or ''}")
            continue
        if m.content:
            body = m.content.replace("\n", "\n    ")
            lines.append(f"{role}: {body}")
        for call in _tool_calls(m.tool_calls):
            lines.append(f"{role} → tool call {call}")
        if not m.content and not m.tool_calls:
            lines.append(f"{role}: (empty)")
    return "\n".join(lines)


def annotation_text(a: AnnotationSchema) -> str:
    """One annotation on a line: name=label (score) · source (author): explanation."""
    verdict = a.name + (f"={a.label}" if a.label is not None else "")
    if a.score is not None:
        verdict += f" ({a.score:g})"
    who = a.source + (f", {a.author}" if a.author else "")
    note = " ".join(a.explanation.split()) if a.explanation else ""
    return f"{verdict} · {who}" + (f": {clip(note, 100)}" if note else "")


def annotations(detail: ThreadDetail) -> str:
    """The thread's annotations, the thread's own first, then by turn. Empty when none."""
    index = {t.turn_id: t.turn_index for t in detail.turns}
    lines = []
    for a in detail.annotations:
        where = "thread" if a.turn_id is None else f"turn {index.get(a.turn_id, '?')}"
        lines.append(f"  {where}: {annotation_text(a)}")
    return "annotations:\n" + "\n".join(lines) if lines else ""


def ended_text(t: ThreadSchema, now: dt.datetime | None = None) -> str:
    """The end of `show`'s summary line: ended, or reopened after an end, or nothing."""
    if t.ended:
        return f"  ·  ended {ago(t.ended_at, now)}"
    if t.reopened_at is not None:
        return f"  ·  reopened {ago(t.reopened_at, now)}"
    return ""


def thread_detail(detail: ThreadDetail, now: dt.datetime | None = None) -> str:
    """What `otel-threads show` prints: a summary line, the turns, the forks, the chat."""
    t = detail.thread
    index = {turn.turn_id: turn.turn_index for turn in detail.turns}
    out = [
        f"thread {t.thread_id}  ·  {t.turn_count} turns  ·  started "
        f"{ago(t.start_time, now)}  ·  updated {ago(t.last_updated, now)}  ·  "
        f"p50 {duration(t.p50_turn_duration_ms)}  ·  "
        f"{(t.input_tokens or 0) + (t.output_tokens or 0)} tokens  ·  "
        f"cost {cost_text(t.cost_usd, t.unpriced_call_count)}{ended_text(t, now)}",
        "",
        turn_rows(detail, now),
        "",
    ]
    for notes in (branches(detail, now), annotations(detail)):
        if notes:
            out += [notes, ""]
    if detail.through_turn:
        out.append(
            f"(the branch through turn {index.get(detail.through_turn, '?')}: "
            f"turns {', '.join(str(index[b]) for b in detail.branch)})"
        )
    out.append(
        chat(detail.transcript, index)
        if detail.transcript
        else "(no messages recorded in this thread)"
    )
    return "\n".join(out)
