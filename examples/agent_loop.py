"""A hand-written agent loop: each `process_user_message` is one turn.

No framework: the agent retrieves notes, classifies the request, asks the model,
and formats the answer, each step a span nested in ``process_user_message``. Two
conversations: one with an automatic thread id (``thread()``: a new UUIDv7), one
under the app's own conversation id, ``user_session_123``.

    otel-threads collect &
    python examples/agent_loop.py

Expected result: two threads, the auto id (printed) and user_session_123, each with
2 turns. Every turn is a ``process_user_message`` span whose children are
``retrieve``, ``classify``, the LLM call (``chat gpt-4o-mini``) and ``format_answer``
(5 spans, 1 LLM call). The transcript of user_session_123 (after the system prompt
with the retrieved notes; the printed answers also carry the ``[topic]`` tag that
``format_answer`` adds for the user):

    user       How do I reset my password?
    assistant  Open Settings, then Security, then Reset password.
    user       And how do I change my email?
    assistant  Open Settings, then Profile, then Email.

and of the auto thread: "What plans do you offer?" answered "There are Free, Pro
and Team plans.", then "Can I pay yearly?" answered "Yes: yearly billing saves two
months."
"""

from __future__ import annotations

NOTES = {
    "account": "Account settings live under Settings.",
    "billing": "Plans: Free, Pro, Team; yearly billing saves two months.",
}
CONVERSATIONS = [
    (
        None,
        [
            ("What plans do you offer?", "There are Free, Pro and Team plans."),
            ("Can I pay yearly?", "Yes: yearly billing saves two months."),
        ],
    ),
    (
        "user_session_123",
        [
            ("How do I reset my password?", "Open Settings, then Security, then Reset password."),
            ("And how do I change my email?", "Open Settings, then Profile, then Email."),
        ],
    ),
]


class Agent:
    def __init__(self, client, tracer) -> None:
        self.client, self.tracer = client, tracer
        self.history: list[dict] = []

    def retrieve(self, text: str) -> str:
        with self.tracer.start_as_current_span("retrieve"):
            return " ".join(NOTES.values())

    def classify(self, text: str) -> str:
        with self.tracer.start_as_current_span("classify") as span:
            topic = "billing" if any(w in text.lower() for w in ("plan", "pay")) else "account"
            span.set_attribute("agent.topic", topic)
            return topic

    def format_answer(self, topic: str, text: str) -> str:
        with self.tracer.start_as_current_span("format_answer"):
            return f"[{topic}] {text}"

    def process_user_message(self, text: str) -> str:
        from llm_setup import MODEL

        with self.tracer.start_as_current_span("process_user_message"):  # the turn
            context = self.retrieve(text)
            topic = self.classify(text)
            messages = [
                {"role": "system", "content": f"Answer from these notes: {context}"},
                *self.history,
                {"role": "user", "content": text},
            ]
            reply = self.client.chat.completions.create(model=MODEL, messages=messages)
            content = reply.choices[0].message.content
            answer = self.format_answer(topic, content)
        self.history += [
            {"role": "user", "content": text},
            {"role": "assistant", "content": content},
        ]  # what the model said
        return answer


def main() -> list[str]:
    from llm_setup import llm_app

    from otel_threads import thread

    replies = [answer for _, turns in CONVERSATIONS for _, answer in turns]
    ids = []
    with llm_app("agent-loop", replies) as (client, tracer):
        for conversation_id, turns in CONVERSATIONS:
            agent = Agent(client, tracer)
            # thread() mints an id; thread("user_session_123") uses the app's own
            block = thread() if conversation_id is None else thread(conversation_id)
            with block as t:
                print(f"thread id: {t.thread_id}")
                for text, _ in turns:
                    print(f"  user: {text}\n  agent: {agent.process_user_message(text)}")
            ids.append(t.thread_id)
    return ids


if __name__ == "__main__":
    main()
