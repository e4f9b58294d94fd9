"""The reads bench/clickhouse.py times on both stores, through `ThreadsClient`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from otel_threads import ThreadsClient
from otel_threads.filters import ThreadFilter
from otel_threads.request import SortBy, ThreadsQueryReq

#: (name, request) of each threads-list read.
READS = [
    ("threads_query (50 by last_updated)", ThreadsQueryReq()),
    (
        "  filter: app.tenant=acme, >= 100 turns",
        ThreadsQueryReq(filter=ThreadFilter(attributes={"app.tenant": "acme"}, min_turns=100)),
    ),
    ("  sort: input_tokens desc", ThreadsQueryReq(sort_by=[SortBy("input_tokens", "desc")])),
    ("  text: 'question 1500 of'", ThreadsQueryReq(filter=ThreadFilter(text="question 1500 of"))),
]
#: The thread lengths whose detail is timed.
DETAIL_TURNS = (10, 100, 2000)


def detail_threads(turns: dict[str, int]) -> list[tuple[int, int, str]]:
    """(wanted, turns, thread id) of the thread nearest to each of `DETAIL_TURNS` turns."""
    return [
        (want, *min(((n, t) for t, n in turns.items()), key=lambda p: (abs(p[0] - want), p[1])))
        for want in DETAIL_TURNS
    ]


def time_reads(
    url: str, db: str, picks: list[tuple[int, int, str]], rounds: int
) -> tuple[dict[str, tuple[list[float], list[float]]], list[str]]:
    """name -> (chDB seconds, file seconds) of each read, ``rounds`` calls each after a
    warm one, the two stores' calls alternating; and where their answers differ."""
    clients = (ThreadsClient(url), ThreadsClient(db))
    calls = [(name, (lambda c, r=req: c.threads_query(r)), None) for name, req in READS]
    calls += [
        (f"thread: {n:,} turns (nearest {want:,})", (lambda c, t=tid: c.thread(t)), n)
        for want, n, tid in picks
    ]
    # (on chDB, a reader keeps the thread it derived last until a worker writes it anew;
    # read again after letting it go, the thread is read back and derived each time)
    calls += [
        (f"  the same, not kept: {n:,} turns", (lambda c, t=tid: _cold(c).thread(t)), n)
        for _, n, tid in picks
    ]
    out: dict[str, tuple[list[float], list[float]]] = {}
    differ = []
    try:
        for name, call, turns in calls:
            answers = [call(c) for c in clients]  # warm both, and compare
            if turns is not None:
                got, want = [len(a.turns) for a in answers], [turns, turns]
            else:
                got, want = [a.total for a in answers], [answers[1].total] * 2
            if got != want:
                differ.append(f"{name.strip()}: chDB {got[0]}, file {got[1]}, not {want[0]}")
            times: tuple[list[float], list[float]] = ([], [])
            for _ in range(rounds):
                for client, into in zip(clients, times, strict=True):
                    started = time.perf_counter()
                    call(client)
                    into.append(time.perf_counter() - started)
            out[name] = times
    finally:
        for client in clients:
            client.close()
    return out, differ


def _cold(client: ThreadsClient) -> ThreadsClient:
    if client.clickhouse is not None:
        client.clickhouse.forget()
    return client


def folder_bytes(path: Path, suffix: tuple[str, ...] | None = None) -> int:
    """Bytes of the files under ``path`` (those ending in ``suffix`` only, when given)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            if suffix is None or name.endswith(suffix):
                total += os.path.getsize(os.path.join(root, name))
    return total
