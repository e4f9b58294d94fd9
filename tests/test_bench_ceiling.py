"""bench/ceiling.py's collectors: ``ingest-only`` stores what it acknowledges and derives
nothing; the plain one derives the same spans (so the first is not a collector that
merely failed to derive)."""

from __future__ import annotations

import os
import sys

import duckdb
import grpc
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
try:
    import ceiling
    import conversations
    from soak import EXPORT
finally:
    sys.path.pop(0)

REQUESTS = 3


def _export(target: str) -> int:
    """``REQUESTS`` of the soak's requests, each acknowledged; the spans they held."""
    made = conversations.Conversations(7)
    with grpc.insecure_channel(target) as channel:
        export = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
        for _ in range(REQUESTS):
            spans, _ = made.next_turns()
            export(conversations.request(spans), timeout=60)
    return REQUESTS * conversations.TURNS_PER_REQUEST * conversations.SPANS_PER_TURN


@pytest.mark.parametrize("ingest_only", [True, False], ids=["ingest-only", "collector"])
def test_ingest_only_collector_stores_and_derives_nothing(tmp_path, ingest_only):
    db = tmp_path / "c.duckdb"
    with (tmp_path / "collector.log").open("w") as log:
        with ceiling.collector(db, log, ingest_only) as note:
            sent = _export(note["grpc"].split("://")[-1])
    assert str(ceiling.INGEST_ONLY) not in os.environ.get("PYTHONPATH", "")  # (only its child)
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored, queued, derived = con.execute(
            "SELECT (SELECT count(*) FROM spans_raw), (SELECT count(*) FROM derive_queue), "
            "(SELECT count(*) FROM span_threads_mat)"
        ).fetchall()[0]
    finally:
        con.close()
    assert stored == sent
    assert queued == 0  # (the plain one's stop worked its queue off)
    assert derived == (0 if ingest_only else sent)
