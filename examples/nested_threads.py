"""Nested threads: one request, three threads, one per layer.

An app groups each request's work by layer: the request itself in ``app_<id>``, its
infrastructure operations in ``app_<id>_infra`` and its reasoning in
``app_<id>_logic``. A ``thread()`` block opened inside a turn of another thread is a
thread of its own: each operation started in it is a turn of that thread (its parent
is in a different thread), and leaving the block returns to the outer thread.

    otel-threads collect &
    python examples/nested_threads.py

Expected result: for one app id (printed), three threads after two requests:

    app_<id>        2 turns   handle_request (each holding its own spans only)
    app_<id>_infra  4 turns   load_session, save_session per request
    app_<id>_logic  4 turns   classify, answer per request (answer holds the LLM call)

The LLM call is in the turn ``answer`` of the logic thread, so the logic thread's
transcript holds the conversation (the other two have none):

    user       What's new in 2.0?
    assistant  Faster queries.
    user       Is the upgrade safe?
    assistant  Yes, with a backup first.
"""

from __future__ import annotations

APP_ID = "4711"
REQUESTS = [
    ("What's new in 2.0?", "Faster queries."),
    ("Is the upgrade safe?", "Yes, with a backup first."),
]


def main() -> dict[str, str]:
    from llm_setup import MODEL, llm_app

    from otel_threads import thread

    threads = {
        "app": f"app_{APP_ID}",
        "infra": f"app_{APP_ID}_infra",
        "logic": f"app_{APP_ID}_logic",
    }
    history: list[dict] = []
    with llm_app("nested-threads", [a for _, a in REQUESTS]) as (client, tracer):
        for question, _ in REQUESTS:
            with thread(threads["app"]), tracer.start_as_current_span("handle_request"):
                with thread(threads["infra"]):  # each operation here: an infra turn
                    with tracer.start_as_current_span("load_session"):
                        pass
                with thread(threads["logic"]):  # each operation here: a logic turn
                    with tracer.start_as_current_span("classify"):
                        pass
                    with tracer.start_as_current_span("answer"):
                        history.append({"role": "user", "content": question})
                        answer = (
                            client.chat.completions.create(model=MODEL, messages=history)
                            .choices[0]
                            .message.content
                        )
                        history.append({"role": "assistant", "content": answer})
                with thread(threads["infra"]), tracer.start_as_current_span("save_session"):
                    pass
            print(f"{question} -> {answer}")
    print(f"app id: {APP_ID}; threads: {', '.join(threads.values())}")
    return threads


if __name__ == "__main__":
    main()
