"""Customer-service bot, resumed across visits: one thread, three process runs.

Ana asks where her order is. Two hours later she is back: it has not arrived, and
the bot opens a ticket. The next day she says it came, and the bot resolves the
ticket. Each visit is a separate run of this program (a new process) on one
explicit thread id, ``support_thread_42``; the conversation so far, the orders and
the tickets are kept between runs in a small JSON file, as a real bot keeps them
in its database. The bot's own work (profile lookup, order status, ticket creation
and resolution) is spans; its replies are real OpenAI client calls, traced by the
official instrumentation, to the bundled fake model.

    otel-threads collect &                        # a collector on 127.0.0.1
    python examples/customer_service.py           # the three visits, each its own process
    python examples/customer_service.py --visit 2 --state support_state.json

Expected result: one thread, support_thread_42, with 4 turns from 3 processes, each
turn a ``handle_message`` span holding the bot's spans and its LLM calls:

    turn 1 (visit 1)  lookup_profile, 1 LLM call
    turn 2 (visit 1)  lookup_profile, get_order_status, 2 LLM calls
    turn 3 (visit 2)  lookup_profile, create_ticket, 2 LLM calls
    turn 4 (visit 3)  lookup_profile, resolve_ticket, 2 LLM calls

and the transcript (the system prompt once, each tool call and its result):

    system     You are the support assistant of Example Shop. Be brief.
    user       Hi, this is Ana.
    assistant  Hello Ana! How can I help you today?
    user       Where is my order A-1042?
    assistant  get_order_status({"order_id": "A-1042"})
    tool       A-1042: shipped on Nov 18, in transit
    assistant  Your order A-1042 shipped on Nov 18 and is on its way.
    user       It still hasn't arrived. Can you open a ticket?
    assistant  create_ticket({"order_id": "A-1042", "reason": "not delivered"})
    tool       ticket T-1 opened for A-1042: not delivered
    assistant  I opened ticket T-1. We will look into it today.
    user       It arrived this morning, thanks! Please close the ticket.
    assistant  resolve_ticket({"ticket_id": "T-1"})
    tool       ticket T-1 resolved
    assistant  Glad it arrived! Ticket T-1 is resolved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

THREAD_ID = "support_thread_42"
CUSTOMER = "cust-ana"
SYSTEM = "You are the support assistant of Example Shop. Be brief."
DEFAULT_STATE = "support_state.json"


def call(name: str, **arguments: str) -> dict:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


#: Each visit: (what Ana writes, what the fake model answers, in order).
VISITS = {
    1: [
        ("Hi, this is Ana.", ["Hello Ana! How can I help you today?"]),
        (
            "Where is my order A-1042?",
            [
                call("get_order_status", order_id="A-1042"),
                "Your order A-1042 shipped on Nov 18 and is on its way.",
            ],
        ),
    ],
    2: [
        (
            "It still hasn't arrived. Can you open a ticket?",
            [
                call("create_ticket", order_id="A-1042", reason="not delivered"),
                "I opened ticket T-1. We will look into it today.",
            ],
        )
    ],
    3: [
        (
            "It arrived this morning, thanks! Please close the ticket.",
            [call("resolve_ticket", ticket_id="T-1"), "Glad it arrived! Ticket T-1 is resolved."],
        )
    ],
}
WHEN = {1: "first visit", 2: "two hours later", 3: "the next day"}


def tool(name: str, description: str, **params: str) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "required": list(params),
                "properties": {p: {"type": "string", "description": d} for p, d in params.items()},
            },
        },
    }


TOOLS = [
    tool("get_order_status", "Where an order is.", order_id="the order id"),
    tool("create_ticket", "Open a support ticket.", order_id="the order id", reason="why"),
    tool("resolve_ticket", "Close a support ticket.", ticket_id="the ticket id"),
]


def new_state() -> dict:
    return {
        "messages": [{"role": "system", "content": SYSTEM}],
        "orders": {"A-1042": "shipped on Nov 18, in transit"},
        "profiles": {CUSTOMER: {"name": "Ana", "tier": "gold"}},
        "tickets": {},
    }


class Bot:
    """The support bot: its tools work on the state; every step is a span."""

    def __init__(self, client, tracer, state: dict) -> None:
        self.client, self.tracer, self.state = client, tracer, state

    def run_tool(self, name: str, args: dict) -> str:
        with self.tracer.start_as_current_span(
            name, attributes={"tool.arguments": json.dumps(args)}
        ):
            if name == "get_order_status":
                return f"{args['order_id']}: {self.state['orders'][args['order_id']]}"
            tickets = self.state["tickets"]
            if name == "create_ticket":
                ticket = f"T-{len(tickets) + 1}"
                tickets[ticket] = {"order_id": args["order_id"], "status": "open"}
                return f"ticket {ticket} opened for {args['order_id']}: {args['reason']}"
            tickets[args["ticket_id"]]["status"] = "resolved"
            return f"ticket {args['ticket_id']} resolved"

    def handle_message(self, text: str) -> str:
        """One turn: the user's message, any tool calls, the answer."""
        from llm_setup import MODEL

        with self.tracer.start_as_current_span("handle_message", attributes={"user.id": CUSTOMER}):
            with self.tracer.start_as_current_span("lookup_profile"):
                profile = self.state["profiles"][CUSTOMER]
            messages = [*self.state["messages"], {"role": "user", "content": text}]
            while True:
                reply = (
                    self.client.chat.completions.create(
                        model=MODEL,
                        messages=messages,
                        tools=TOOLS,
                        user=f"{CUSTOMER}:{profile['tier']}",
                    )
                    .choices[0]
                    .message
                )
                messages.append(reply.model_dump(exclude_none=True))
                if not reply.tool_calls:
                    break
                for tc in reply.tool_calls:
                    result = self.run_tool(tc.function.name, json.loads(tc.function.arguments))
                    messages.append({"role": "tool", "tool_call_id": tc.id, "content": result})
        self.state["messages"] = messages
        return reply.content


def visit(number: int, state_path: Path) -> None:
    """One visit: a new process, resuming the thread from the saved conversation."""
    from llm_setup import llm_app

    from otel_threads import thread

    state = json.loads(state_path.read_text()) if state_path.exists() else new_state()
    script = VISITS[number]
    replies = [r for _, answers in script for r in answers]
    print(f"visit {number} ({WHEN[number]}), thread {THREAD_ID}")
    with llm_app("support-bot", replies) as (client, tracer):
        bot = Bot(client, tracer, state)
        for text, _ in script:
            with thread(THREAD_ID):  # the same explicit id in every process
                answer = bot.handle_message(text)
            print(f"  ana: {text}\n  bot: {answer}")
    state_path.write_text(json.dumps(state, indent=1))


def scenario(state_path: Path | None = None) -> None:
    """The three visits, each in its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        state = state_path or Path(tmp) / DEFAULT_STATE
        for number in VISITS:
            subprocess.run(
                [sys.executable, __file__, "--visit", str(number), "--state", str(state)],
                check=True,
            )
    print(f"thread id: {THREAD_ID}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--visit",
        type=int,
        choices=sorted(VISITS),
        help="run one visit (default: all three, each its own process)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help=f"the bot's saved conversation (default for --visit: "
        f"{DEFAULT_STATE}; for the scenario: a temporary file)",
    )
    args = parser.parse_args(argv)
    if args.visit is None:
        scenario(args.state)
    else:
        visit(args.visit, args.state or Path(DEFAULT_STATE))


if __name__ == "__main__":
    main()
