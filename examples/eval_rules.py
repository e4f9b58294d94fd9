"""A rule-based evaluator: judges a thread from its turns and transcript, no model.

    otel-threads eval --run examples.eval_rules:evaluate --quiet-for 10m

Rules, each a result (an annotation with source ``examples.eval_rules.evaluate``):

- ``turn_error`` of each turn that failed (a span of it, such as a tool call, ended with
  an error): label ``error``, score 0, the failing span and its message;
- ``repeated`` of each turn where the user says again what they said before (the bot
  did not help the first time): label ``repeated``, score 0, which turn said it first;
- ``rules`` of the whole thread: label ``pass`` (score 1) when no rule fired, else
  ``fail`` (score 0) saying what fired.

Expected result on the threads of the customer_service example (one thread, no
failed turn, the user never repeats themselves):

    support_thread_42  rules  pass  1.0
"""

from __future__ import annotations

from otel_threads import EvaluationResult, ThreadDetail


def _said(text: str) -> str:
    """What the user said, compared loosely (case, spacing, end punctuation)."""
    return " ".join(text.casefold().split()).rstrip(".!?")


def evaluate(detail: ThreadDetail) -> list[EvaluationResult]:
    results = []
    for turn in detail.turns:
        if turn.has_error:
            why = turn.error
            where = why.span_name if why and why.span_name else turn.name
            message = why.message if why and why.message else "no message"
            results.append(
                EvaluationResult(
                    "turn_error",
                    label="error",
                    score=0,
                    explanation=f"{where} failed: {message}"[:500],
                    turn_id=turn.turn_id,
                )
            )
    index = {t.turn_id: t.turn_index for t in detail.turns}
    first: dict[str, str] = {}  # what the user said -> the turn that said it first
    for message in detail.transcript:
        if message.role != "user" or not message.content or message.turn_id is None:
            continue
        said = _said(message.content)
        earlier = first.setdefault(said, message.turn_id)
        if earlier != message.turn_id:
            results.append(
                EvaluationResult(
                    "repeated",
                    label="repeated",
                    score=0,
                    explanation=f"the user said this in turn {index.get(earlier, '?')} already",
                    turn_id=message.turn_id,
                )
            )
    fired = sorted({r.name for r in results})
    results.append(
        EvaluationResult("rules", label="fail", score=0, explanation=", ".join(fired))
        if fired
        else EvaluationResult("rules", label="pass", score=1)
    )
    return results
