"""Linked turns: each request names the turn it answers; a "regenerate" is a fork.

Some apps keep no thread id. They store the id of the last turn (here, in a small
JSON file) and each new request names it with ``thread(previous_turn_id=...)``; the
store finds the thread along the chain of links. Only the first request opens a
thread (``thread()``: a new UUIDv7). Every request here runs in its own process, as
it would behind a web server.

    otel-threads collect &                       # the collector, on 127.0.0.1
    python examples/linked_turns.py              # the scenario: 4 requests, 4 processes
    python examples/linked_turns.py ask "Hi!"    # one more request after the last turn
    python examples/linked_turns.py regenerate   # answer the last question again

Expected result of the scenario: one thread, its id printed first, with 4 turns.
Turn 2 names turn 1 and turn 3 names turn 2; turn 4 regenerates the answer to
turn 3's question, so it names turn 2 too: a fork after turn 2 with two answers
(`forks`: child_count 2, `threads.fork_count` 1). The transcript follows the newest
branch (turns 1, 2, 4):

    user       Hi! I'm planning a weekend in Lisbon.
    assistant  Lovely! What would you like to know?
    user       What will the weather be like?
    assistant  Sunny, around 24°C.
    user       Any museum you'd recommend?
    assistant  The Azulejo museum: an hour is enough for the highlights.

and ``otel-threads show THREAD --through TURN3`` shows the first answer to the
last question instead ("The Gulbenkian, for its garden and its collection.").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

QUESTIONS = [
    "Hi! I'm planning a weekend in Lisbon.",
    "What will the weather be like?",
    "Any museum you'd recommend?",
]
#: The fake model's answer to each question, by attempt (a regenerate is attempt 2).
ANSWERS = {
    QUESTIONS[0]: ["Lovely! What would you like to know?"],
    QUESTIONS[1]: ["Sunny, around 24°C."],
    QUESTIONS[2]: [
        "The Gulbenkian, for its garden and its collection.",
        "The Azulejo museum: an hour is enough for the highlights.",
    ],
}
DEFAULT_STATE = "linked_turns_state.json"


def load(state: Path) -> dict:
    if state.exists():
        return json.loads(state.read_text())
    return {"thread_id": None, "turns": []}


def request(state_path: Path, question: str, previous: dict | None) -> dict:
    """One request: a turn that answers ``previous`` (a stored turn), or opens a thread."""
    from llm_setup import MODEL, llm_app

    from otel_threads import thread

    state = load(state_path)
    attempt = sum(t["question"] == question for t in state["turns"])
    answers = ANSWERS.get(question, [])
    reply = [answers[min(attempt, len(answers) - 1)]] if answers else []
    history = previous["messages"] if previous else []
    messages = [*history, {"role": "user", "content": question}]
    with llm_app("trip-planner", reply) as (client, tracer):
        block = thread(previous_turn_id=previous["turn_id"]) if previous else thread()
        with block as t, tracer.start_as_current_span("handle_request"):
            answer = (
                client.chat.completions.create(model=MODEL, messages=messages)
                .choices[0]
                .message.content
            )
    turn = {
        "turn_id": t.last_turn_id,  # what the app stores to link its next request
        "previous_turn_id": previous["turn_id"] if previous else None,
        "question": question,
        "messages": [*messages, {"role": "assistant", "content": answer}],
    }
    state["thread_id"] = state["thread_id"] or t.thread_id
    state["turns"].append(turn)
    state_path.write_text(json.dumps(state, indent=1))
    link = f"answers {turn['previous_turn_id']}" if previous else f"opens thread {t.thread_id}"
    print(f"turn {turn['turn_id']} ({link}): {answer}")
    return turn


def ask(state_path: Path, question: str) -> dict:
    turns = load(state_path)["turns"]
    return request(state_path, question, turns[-1] if turns else None)


def regenerate(state_path: Path) -> dict:
    """Ask the last question again: a new turn naming the same previous turn."""
    turns = {t["turn_id"]: t for t in load(state_path)["turns"]}
    if not turns:
        raise SystemExit("nothing to regenerate: ask something first")
    last = list(turns.values())[-1]
    return request(state_path, last["question"], turns.get(last["previous_turn_id"]))


def scenario() -> str:
    """Three questions, then a regenerate: each request its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / DEFAULT_STATE
        runs = [["ask", q] for q in QUESTIONS] + [["regenerate"]]
        for args in runs:
            subprocess.run([sys.executable, __file__, *args, "--state", str(state)], check=True)
        thread_id = load(state)["thread_id"]
    print(f"thread id: {thread_id}")
    print(f"see it: otel-threads show {thread_id}")
    return thread_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["ask", "regenerate"])
    parser.add_argument("text", nargs="?", help="the question (ask)")
    parser.add_argument(
        "--state",
        type=Path,
        default=Path(DEFAULT_STATE),
        help=f"where the app keeps its last turns (default {DEFAULT_STATE})",
    )
    args = parser.parse_args(argv)
    if args.command is None:
        scenario()
    elif args.command == "ask":
        if not args.text:
            parser.error("ask needs the question")
        ask(args.state, args.text)
    else:
        regenerate(args.state)


if __name__ == "__main__":
    main()
