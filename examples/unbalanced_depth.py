"""Unbalanced call depth: where to open `thread()` so that every request is a turn.

Two model providers reach the model at different depths below the request handler:
``QuickProvider`` calls it directly, ``PlanningProvider`` plans first and calls it
three levels down. The right place for ``thread()`` is the one place every request
passes through, around the span that is the turn (``handle_request``), whatever
happens below it.

Why not inside the deepest function? The turn is the first span started inside the
block. Opened in ``PlanningProvider._call_model``, the block would start after
``handle_request`` and the provider's own spans had begun: they started outside it,
so they belong to no thread; ``QuickProvider`` never reaches that function at all, so
its requests belong to no thread either; and if the block is opened after the last
span was started, as around a plain function call, no span starts inside it: it
groups nothing. Wrong:

    def _call_model(self, messages):
        with tracer.start_as_current_span("call_model"):
            with thread(SESSION):           # too late: nothing starts in here
                return http_post(messages)

    otel-threads collect &
    python examples/unbalanced_depth.py

Expected result: one thread, ``unbalanced-demo``, with 5 turns, one per request, in
order, alternating providers (quick, planning, quick, planning, quick). Each turn is
a ``handle_request`` span: a quick turn holds ``quick.reply`` and the LLM call (3
spans); a planning turn holds ``planning.reply``, ``planning.plan``,
``planning.call_model`` and the LLM call (5 spans). Every span of the run is in the
thread. The fake model echoes; the planning provider's system prompt shows where the
conversation's system prompt changes (the quick provider sends none):

    user       Hi!
    assistant  You said: Hi!
    system     Think in steps.
    user       Plan a 3-day trip to Porto.
    assistant  You said: Plan a 3-day trip to Porto.
    user       Thanks. What about food?
    assistant  You said: Thanks. What about food?
    system     Think in steps.
    user       Make it a 2-day plan.
    assistant  You said: Make it a 2-day plan.
    user       Great, bye!
    assistant  You said: Great, bye!
"""

from __future__ import annotations

SESSION = "unbalanced-demo"
QUESTIONS = [
    "Hi!",
    "Plan a 3-day trip to Porto.",
    "Thanks. What about food?",
    "Make it a 2-day plan.",
    "Great, bye!",
]


class QuickProvider:
    name = "quick"

    def __init__(self, client, tracer) -> None:
        self.client, self.tracer = client, tracer

    def reply(self, messages: list[dict]) -> str:  # the model, one level down
        from llm_setup import MODEL

        with self.tracer.start_as_current_span("quick.reply"):
            return (
                self.client.chat.completions.create(model=MODEL, messages=messages)
                .choices[0]
                .message.content
            )


class PlanningProvider(QuickProvider):
    name = "planning"

    def reply(self, messages: list[dict]) -> str:  # the model, three levels down
        with self.tracer.start_as_current_span("planning.reply"):
            return self._plan(messages)

    def _plan(self, messages: list[dict]) -> str:
        with self.tracer.start_as_current_span("planning.plan"):
            steps = [{"role": "system", "content": "Think in steps."}, *messages]
            return self._call_model(steps)

    def _call_model(self, messages: list[dict]) -> str:
        from llm_setup import MODEL

        with self.tracer.start_as_current_span("planning.call_model"):
            return (
                self.client.chat.completions.create(model=MODEL, messages=messages)
                .choices[0]
                .message.content
            )


def main() -> str:
    from llm_setup import llm_app

    from otel_threads import thread

    with llm_app("unbalanced-depth") as (client, tracer):
        providers = [QuickProvider(client, tracer), PlanningProvider(client, tracer)]
        history: list[dict] = []
        for i, question in enumerate(QUESTIONS):
            provider = providers[i % 2]
            history.append({"role": "user", "content": question})
            with thread(SESSION):  # right: around the turn's span, in the handler
                with tracer.start_as_current_span(
                    "handle_request", attributes={"provider": provider.name}
                ):
                    answer = provider.reply(history)
            history.append({"role": "assistant", "content": answer})
            print(f"{provider.name:>8}: {question} -> {answer}")
    print(f"thread id: {SESSION}")
    return SESSION


if __name__ == "__main__":
    main()
