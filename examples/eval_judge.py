"""An LLM-as-judge evaluator: asks a model whether the assistant helped, through the
official ``openai`` client, and stores its grade.

    otel-threads eval --run examples.eval_judge:judge --quiet-for 10m

The judge sends the thread's transcript and offers one tool, ``grade`` (a score from 0
to 1 and a reason); the model's call of it becomes the result ``helpfulness`` of the
whole thread: label ``helpful`` (score >= 0.5) or ``unhelpful``, the score, the reason.
A model that answers without grading makes the evaluation fail for that thread (the
error is recorded; the other threads go on).

The model is the one ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` name (``JUDGE_MODEL``,
default gpt-4o-mini); without ``OPENAI_BASE_URL`` it is the bundled fake model
(otel_threads.testing.fakellm), so this runs offline. The fake grades every thread with
score 1 and no reason. Expected result on the customer_service example's thread:

    support_thread_42  helpfulness  helpful  1.0
"""

from __future__ import annotations

import atexit
import json
import os

import openai

from otel_threads import EvaluationResult, ThreadDetail

GRADE = {
    "type": "function",
    "function": {
        "name": "grade",
        "description": "Grade how well the assistant helped the user.",
        "parameters": {
            "type": "object",
            "properties": {
                "score": {"type": "number", "description": "0 (no help) to 1 (solved it)"},
                "reason": {"type": "string", "description": "why, in one sentence"},
            },
            "required": ["score"],
        },
    },
}
SYSTEM = (
    "You review conversations between a user and a support assistant. Read the "
    "conversation, then call grade once."
)
_client: openai.OpenAI | None = None


def _model() -> openai.OpenAI:
    """The judge's client: the model OPENAI_BASE_URL names, else the bundled fake one."""
    global _client
    if _client is None:
        if os.environ.get("OPENAI_BASE_URL"):
            _client = openai.OpenAI()
        else:
            from otel_threads.testing.fakellm import FakeLLM

            fake = FakeLLM()
            atexit.register(fake.stop)
            _client = openai.OpenAI(base_url=fake.start(), api_key="fake", max_retries=0)
    return _client


def _conversation(detail: ThreadDetail) -> str:
    lines = []
    for m in detail.transcript:
        if m.role in ("user", "assistant") and m.content:
            lines.append(f"{m.role}: {m.content}")
        elif m.role == "tool" and m.content:
            lines.append(f"tool result: {m.content}")
    return "\n".join(lines) or "(no messages were recorded)"


def judge(detail: ThreadDetail) -> EvaluationResult:
    answer = _model().chat.completions.create(
        model=os.environ.get("JUDGE_MODEL", "gpt-4o-mini"),
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"The conversation:\n\n{_conversation(detail)}"},
        ],
        tools=[GRADE],
        tool_choice={"type": "function", "function": {"name": "grade"}},
    )
    calls = answer.choices[0].message.tool_calls or []
    if not calls:
        raise ValueError(f"the judge did not grade: {answer.choices[0].message.content!r:.200}")
    grade = json.loads(calls[0].function.arguments)
    score = min(1.0, max(0.0, float(grade["score"])))
    return EvaluationResult(
        "helpfulness",
        label="helpful" if score >= 0.5 else "unhelpful",
        score=score,
        explanation=grade.get("reason") or None,
    )
