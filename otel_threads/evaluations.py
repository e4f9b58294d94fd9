"""Evaluators: Python functions that judge threads (`otel-threads eval`).

An evaluator takes a `ThreadDetail` and returns what it found: one `EvaluationResult`
(or a dict with its keys), a list of them, or None for nothing. A result judges the
whole thread, or one of its turns (``turn_id``). Each result is stored as an
annotation whose source is the evaluator's name.

Each thread is judged once per (evaluator, last turn): `pending_threads` lists the
threads that have ended or been quiet long enough and that the evaluator has not judged
at their current last turn; `record_evaluation` stores the results and an
``evaluation_runs`` row in one transaction, and writes nothing when that row is there
already (another eval got there first). A new turn makes the thread pending again.

    fn = my_module.evaluate                      # ThreadDetail -> results
    results, error = run_evaluator(fn, detail)   # never raises: error is one line
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import duckdb

from otel_threads.annotations import MAX_NAME_CHARS, add_annotation, validate_annotation
from otel_threads.query import ThreadDetail

__all__ = [
    "MAX_ERROR_CHARS",
    "EvaluationResult",
    "PendingThread",
    "check_evaluator_name",
    "normalize_results",
    "pending_threads",
    "record_evaluation",
    "run_evaluator",
]

#: Longest error stored for an evaluator that failed on a thread (one line).
MAX_ERROR_CHARS = 1000
_FIELDS = ("name", "label", "score", "explanation", "turn_id")


@dataclass(frozen=True)
class EvaluationResult:
    """One judgement an evaluator makes: a ``name`` with a ``label``, a ``score`` and/or
    an ``explanation``; of the whole thread, or of its turn ``turn_id``."""

    name: str
    label: str | None = None
    score: float | None = None
    explanation: str | None = None
    turn_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PendingThread(NamedTuple):
    """A thread an evaluator has yet to judge at its current last turn."""

    thread_id: str
    last_turn_id: str | None


def check_evaluator_name(name: Any) -> str:
    """``name`` (stored as the results' source), or ValueError saying what it must be."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"an evaluator's name must be 1-{MAX_NAME_CHARS} characters, got {name!r}")
    if not name.isprintable():
        raise ValueError(f"an evaluator's name must be printable, got {name!r:.80}")
    if name in ("api", "otlp"):
        raise ValueError(f"{name!r} names the annotations made otherwise: pick another name")
    return name


def _one(item: Any, where: str) -> EvaluationResult:
    if isinstance(item, EvaluationResult):
        fields = item.to_dict()
    elif isinstance(item, dict):
        unknown = sorted(str(k) for k in set(item) - set(_FIELDS))
        if unknown:
            raise ValueError(f"{where} has unknown key(s) {unknown}; keys: {', '.join(_FIELDS)}")
        fields = {k: item.get(k) for k in _FIELDS}
    else:
        raise ValueError(
            f"{where} is a {type(item).__name__}: return an EvaluationResult, a dict with "
            f"{', '.join(_FIELDS)}, a list of them, or None"
        )
    try:
        checked = validate_annotation(**fields)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return EvaluationResult(**{k: checked[k] for k in _FIELDS})


def normalize_results(returned: Any, turn_ids: Any = None) -> list[EvaluationResult]:
    """What an evaluator returned, as checked results: None is none, one result (or
    dict) is one, a list or tuple is each of them. ValueError (one line) for anything
    else, or a result that is not a valid annotation, or (``turn_ids`` given: the
    thread's turns) one that names a turn not among them."""
    if returned is None:
        return []
    many = isinstance(returned, (list, tuple))
    items = list(returned) if many else [returned]
    out = [_one(item, f"result {i + 1}" if many else "the result") for i, item in enumerate(items)]
    if turn_ids is not None:
        known = set(turn_ids)
        for r in out:
            if r.turn_id is not None and r.turn_id not in known:
                raise ValueError(f"result {r.name!r} names turn {r.turn_id!r}, not in the thread")
    return out


def error_line(exc: BaseException) -> str:
    """``exc`` as one line: its type and its message's first line, cut to size."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line[:MAX_ERROR_CHARS]


def run_evaluator(
    fn: Callable[[ThreadDetail], Any], detail: ThreadDetail
) -> tuple[list[EvaluationResult], str | None]:
    """Call the evaluator on one thread: (its checked results, None), or ([], the error
    as one line) when it raised or returned something that is not results. Never
    raises an Exception (KeyboardInterrupt and SystemExit pass)."""
    try:
        returned = fn(detail)
    except Exception as exc:
        return [], error_line(exc)
    try:
        return normalize_results(returned, [t.turn_id for t in detail.turns]), None
    except ValueError as exc:
        return [], f"the evaluator returned {str(exc)[: MAX_ERROR_CHARS - 24]}"


def _store_has(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Which of evaluation_runs and threads.ended this store has (a file an older
    otel-threads wrote, read without migrating, has neither; threads that can end came
    later than evaluation_runs)."""
    rows = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() "
        "AND (table_name = 'evaluation_runs' OR (table_name = 'threads' AND column_name = 'ended'))"
    ).fetchall()
    return {"evaluation_runs" if t == "evaluation_runs" else c for t, c in rows}


def pending_threads(
    con: duckdb.DuckDBPyConnection,
    evaluator: str,
    quiet_before: dt.datetime,
    limit: int = 100,
) -> list[PendingThread]:
    """Up to ``limit`` threads for ``evaluator`` to judge, least recently updated first:
    threads that have ended or were last updated at or before ``quiet_before`` (naive
    UTC), with no turn still running, that ``evaluator`` has not judged at their
    current last turn."""
    check_evaluator_name(evaluator)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a whole number of 1 or more, got {limit!r}")
    has = _store_has(con)
    ended = "coalesce(t.ended, false) OR " if "ended" in has else ""
    judged = (
        "AND NOT EXISTS (SELECT 1 FROM evaluation_runs r WHERE r.evaluator = $evaluator "
        "AND r.thread_id = t.thread_id AND r.last_turn_id IS NOT DISTINCT FROM t.last_turn_id)"
        if "evaluation_runs" in has
        else ""
    )
    rows = con.execute(
        f"""
        SELECT t.thread_id, t.last_turn_id FROM threads t
        WHERE ({ended}t.last_updated <= $quiet_before)
          AND coalesce(t.running_turn_count, 0) = 0
          {judged}
        ORDER BY t.last_updated, t.thread_id
        LIMIT $limit""",
        {"quiet_before": quiet_before, "limit": limit}
        | ({"evaluator": evaluator} if judged else {}),
    ).fetchall()
    return [PendingThread(str(t), None if last is None else str(last)) for t, last in rows]


def record_evaluation(
    con: duckdb.DuckDBPyConnection,
    evaluator: str,
    thread_id: str,
    last_turn_id: str | None,
    results: list[EvaluationResult | dict[str, Any]],
    error: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> bool:
    """Store what ``evaluator`` found in ``thread_id`` at its last turn ``last_turn_id``:
    each result as an annotation (source = the evaluator's name) and the
    ``evaluation_runs`` row, with ``error`` when it failed. Every result is checked
    before any is written: a bad one is stored as the evaluator's error instead of the
    results. False, and nothing written, when the row is there already.

    Runs in the caller's transaction, which must be open (the results and the row
    commit together); on the collector that is `Reads.write`, one at a time. KeyError
    for an unknown thread, ValueError for a bad evaluator name or error."""
    check_evaluator_name(evaluator)
    if not isinstance(thread_id, str) or not isinstance(last_turn_id, (str, type(None))):
        raise ValueError("thread_id must be a text, last_turn_id a text or null")
    if error is not None and (not isinstance(error, str) or not error.strip()):
        raise ValueError(f"error must be a text or null, got {error!r:.80}")
    if not con.execute("SELECT 1 FROM threads WHERE thread_id = ?", [thread_id]).fetchall():
        raise KeyError(f"no thread {thread_id!r}")
    done = con.execute(
        "SELECT 1 FROM evaluation_runs WHERE evaluator = ? AND thread_id = ? "
        "AND last_turn_id IS NOT DISTINCT FROM ?",
        [evaluator, thread_id, last_turn_id],
    ).fetchall()
    if done:
        return False
    checked: list[EvaluationResult] = []
    if error is None:
        turns = con.execute("SELECT turn_id FROM turns WHERE thread_id = ?", [thread_id])
        try:
            if not isinstance(results, (list, tuple)):
                raise ValueError(f"results must be a list, got {type(results).__name__}")
            checked = normalize_results(list(results), [t for (t,) in turns.fetchall()])
        except ValueError as exc:
            error = f"the evaluator returned {exc}"
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for r in checked:
        fields = {k: v for k, v in r.to_dict().items() if k != "name"}
        add_annotation(con, thread_id, r.name, **fields, source=evaluator, now=now)
    con.execute(
        "INSERT INTO evaluation_runs (evaluator, thread_id, last_turn_id, finished_at, "
        "result_count, error) VALUES (?, ?, ?, ?, ?, ?)",
        [evaluator, thread_id, last_turn_id, now, len(checked), _cut(error)],
    )
    return True


def _cut(error: str | None) -> str | None:
    return None if error is None else " ".join(error.split())[:MAX_ERROR_CHARS]
