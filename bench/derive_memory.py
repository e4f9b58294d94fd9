"""Derivation memory with huge LLM calls: RSS growth while deriving them.

    python bench/derive_memory.py [--calls 12] [--mb 5] [--arrive together|apart]

Stores ``--calls`` turns of one thread, each one trace: a turn span and an LLM call
span (semconv 1.37 message attributes) whose input is one user message of ``--mb``
MB and whose output one assistant message of ``--mb`` MB, all different text. Then
derives them (otel_threads.store.derive) and prints the process's RSS before, its peak
while deriving (VmHWM, reset first through /proc/self/clear_refs) and the growth,
and checks that the transcript holds every text whole.

``--arrive together`` stores every call, then derives (a collector catching up);
``apart`` derives after each call is stored, as a collector does when calls arrive
one by one (each refresh derives the thread again, over all its calls so far).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from otel_threads.otlp.decode import decode_traces_json
from otel_threads.store import connect
from otel_threads.store.derive import Deriver
from otel_threads.store.insert import insert_batch

T0 = 1_790_000_000 * 10**9


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def text(seed: int, size: int) -> str:
    """``size`` bytes of words, different for every seed."""
    rnd = random.Random(seed)
    words = [
        "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(4096)
    ]
    out, n = [], 0
    while n < size:
        w = words[rnd.randrange(4096)]
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:size]


def _kv(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def call_request(i: int, mb: float, thread_id: str) -> tuple[bytes, str, str]:
    """An OTLP/JSON export of turn ``i`` (its own trace): the turn span and its LLM call.
    Returns the body and the input and output texts."""
    size = int(mb * 1024 * 1024)
    question, answer = f"Q{i} " + text(2 * i, size), f"A{i} " + text(2 * i + 1, size)
    trace = format(i + 1, "032x")
    turn, call = format(16 * (i + 1), "016x"), format(16 * (i + 1) + 1, "016x")
    start = T0 + i * 60 * 10**9
    spans = [
        {
            "traceId": trace,
            "spanId": turn,
            "name": "handle_message",
            "kind": 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 10**9),
            "attributes": [
                _kv("gen_ai.conversation.id", thread_id),
                _kv("otel_threads.turn_id", turn),
                _kv("otel_threads.is_turn", True),
            ],
        },
        {
            "traceId": trace,
            "spanId": call,
            "parentSpanId": turn,
            "name": "chat gpt-4o-mini",
            "kind": 3,
            "startTimeUnixNano": str(start + 10**6),
            "endTimeUnixNano": str(start + 9 * 10**8),
            "attributes": [
                _kv("gen_ai.conversation.id", thread_id),
                _kv("otel_threads.turn_id", turn),
                _kv("gen_ai.operation.name", "chat"),
                _kv("gen_ai.provider.name", "openai"),
                _kv("gen_ai.request.model", "gpt-4o-mini"),
                _kv(
                    "gen_ai.input.messages",
                    json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                    ),
                ),
                _kv(
                    "gen_ai.output.messages",
                    json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": answer}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                ),
            ],
        },
    ]
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_kv("service.name", "big-app")]},
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    return json.dumps(body).encode(), question, answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=12)
    ap.add_argument("--mb", type=float, default=5.0)
    ap.add_argument("--arrive", choices=("together", "apart"), default="together")
    ap.add_argument("--db", help="the store to create (default: a temporary file)")
    args = ap.parse_args()
    path = args.db or os.path.join(tempfile.mkdtemp(prefix="derive-memory-"), "m.duckdb")
    con = connect(path)
    for setting in os.environ.get("BENCH_DUCKDB_SET", "").split(";"):
        if setting:
            con.execute(f"SET {setting}")
    deriver = Deriver(con)
    texts: list[tuple[str, str]] = []
    seq, took, peak_growth = 1, 0.0, 0
    start_rss = None

    def derive() -> None:
        nonlocal took, peak_growth, start_rss
        before = _status("VmRSS")
        start_rss = before if start_rss is None else start_rss
        reset_peak()
        started = time.perf_counter()
        while deriver.refresh():
            pass
        took += time.perf_counter() - started
        peak_growth = max(peak_growth, _status("VmHWM") - before)

    for i in range(args.calls):
        body, question, answer = call_request(i, args.mb, "big-thread")
        texts.append((question, answer))
        batch = decode_traces_json(body).table
        del body
        con.execute("BEGIN TRANSACTION")
        seq += insert_batch(con, "spans", batch, seq, 0, True)
        con.execute("COMMIT")
        del batch
        if args.arrive == "apart":
            derive()
    if args.arrive == "together":
        derive()
    stored = sum(len(q) + len(a) for q, a in texts)
    rows = con.execute(
        "SELECT role, content FROM transcript WHERE thread_id = 'big-thread' ORDER BY seq"
    ).fetchall()
    whole = rows == [m for q, a in texts for m in (("user", q), ("assistant", a))]
    print(
        f"{args.calls} LLM calls of {args.mb:g} MB in and {args.mb:g} MB out "
        f"({stored / 2**20:.0f} MB of text), arriving {args.arrive}: derived in {took:.1f}s; "
        f"RSS before deriving {start_rss / 2**20:.0f} MiB, peak growth while deriving "
        f"{peak_growth / 2**20:.0f} MiB; transcript whole: {whole}"
    )
    con.close()


if __name__ == "__main__":
    main()
