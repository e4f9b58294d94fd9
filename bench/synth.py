"""A synthetic store: threads of turns of spans, 10% LLM spans carrying messages.

    python bench/synth.py PATH [--threads 100000] [--turns 10] [--spans 10]

Writes straight into the store's tables with DuckDB SQL (generating 10M spans
through the OTLP path would take longer than the measurement), then lets the
store derive what it derives. Each turn is one trace: a turn span
(`handle_message`, marked by ThreadSpanProcessor attributes) with ``spans - 1``
children, one of which is an LLM call (`chat gpt-4o-mini`, semconv 1.37 message
attributes as JSON strings, replaying the thread's history like a real app).
A thread starts every 7 s and its turns are 10 min apart, so about 800 threads
are active at any time and rows are stored in time order, interleaved, as a live
collector stores them (no clustering by thread that would flatter lookups).
"""

from __future__ import annotations

import argparse
import time

import duckdb

from otel_threads.store import connect, migrate

#: The generated traces numbered in the order they were stored, and their rows (all in
#: the first generation of trace numbers: the writer begins the next when it is full).
NUMBER = (
    """INSERT INTO trace_numbers_0 SELECT trace_id, nextval('trace_n_seq') FROM (
        SELECT trace_id, min(ingest_seq) AS first_seq FROM spans_raw
        WHERE trace_n IS NULL AND trace_id NOT IN (SELECT trace_id FROM trace_numbers)
        GROUP BY trace_id ORDER BY first_seq)""",
    """UPDATE spans_raw SET trace_n = k.trace_n FROM trace_numbers k
       WHERE k.trace_id = spans_raw.trace_id AND spans_raw.trace_n IS NULL""",
)

GENERATE = """
INSERT INTO spans_raw BY NAME
WITH turns AS (
    SELECT t + $first AS turn_no, t // $turns AS thread_no, t % $turns AS turn_in_thread,
           $base + (t // $turns) * 7_000_000_000 + (t % $turns) * 600_000_000_000 AS t0
    FROM range($threads * $turns) r(t)
),
rows AS (
    SELECT tu.*, k,
           format('{:032x}', turn_no + 1) AS trace_id,
           format('{:016x}', (turn_no + 1) * 16 + k) AS span_id,
           format('{:016x}', (turn_no + 1) * 16) AS turn_span,
           format('{}{:06d}', $prefix, thread_no) AS thread_id,
           t0 + k * 1_000_000 AS start_ns,
           t0 + CASE WHEN k = 0 THEN 900_000_000 ELSE k * 1_000_000 + 50_000_000 END AS end_ns
    FROM turns tu, range($spans) s(k)
)
SELECT trace_id, span_id,
       CASE WHEN k = 0 THEN NULL ELSE turn_span END AS parent_span_id,
       CASE k WHEN 0 THEN 'handle_message' WHEN 1 THEN 'chat gpt-4o-mini'
              ELSE 'step ' || k END AS name,
       CASE WHEN k = 1 THEN 'CLIENT' ELSE 'INTERNAL' END AS kind,
       make_timestamp(start_ns // 1000) AS start_time,
       make_timestamp(end_ns // 1000) AS end_time,
       start_ns AS start_time_unix_nano, end_ns AS end_time_unix_nano,
       (end_ns - start_ns) / 1e6 AS duration_ms,
       CASE WHEN k = 0 AND (turn_no % 97) = 0 THEN 'ERROR' ELSE 'UNSET' END AS status_code,
       'bench-app' AS service_name, 'bench' AS project,
       CASE WHEN k = 1 THEN json_object(
               'gen_ai.conversation.id', thread_id, 'otel_threads.turn_id', turn_span,
               'gen_ai.operation.name', 'chat', 'gen_ai.provider.name', 'openai',
               'gen_ai.request.model', 'gpt-4o-mini',
               'gen_ai.response.model', 'gpt-4o-mini-2024-07-18',
               'gen_ai.usage.input_tokens', 40 + 30 * turn_in_thread,
               'gen_ai.usage.output_tokens', 25,
               'gen_ai.input.messages', to_json(list_concat(
                   [{'role': 'system', 'parts': [{'type': 'text',
                     'content': 'You are a helpful support agent.'}]}],
                   flatten(list_transform(
                       range(greatest(0, turn_in_thread - $replay), turn_in_thread),
                       lambda i: [
                       {'role': 'user', 'parts': [{'type': 'text', 'content':
                         format('Question {} of thread {}', i + 1, thread_no)}]},
                       {'role': 'assistant', 'parts': [{'type': 'text', 'content':
                         format('Answer {} for thread {}', i + 1, thread_no)}]}])),
                   [{'role': 'user', 'parts': [{'type': 'text', 'content':
                     format('Question {} of thread {}', turn_in_thread + 1, thread_no)}]}]
               ))::VARCHAR,
               'gen_ai.output.messages', to_json([{'role': 'assistant', 'parts': [
                   {'type': 'text', 'content':
                    format('Answer {} for thread {}', turn_in_thread + 1, thread_no)}],
                   'finish_reason': 'stop'}])::VARCHAR)
            WHEN k = 0 THEN json_object(
               'gen_ai.conversation.id', thread_id, 'otel_threads.turn_id', turn_span,
               'otel_threads.is_turn', true, 'user.id', format('user-{}', thread_no % 5000),
               'http.route', '/chat', 'app.version', '1.4.2')
            ELSE json_object(
               'gen_ai.conversation.id', thread_id, 'otel_threads.turn_id', turn_span,
               'db.system', 'postgresql', 'db.operation', 'SELECT',
               'app.step', k, 'app.cache_hit', k % 2 = 0)
       END AS attributes,
       '[]' AS events, '[]' AS links,
       '{"service.name":"bench-app","service.version":"1.4.2"}' AS resource_attributes,
       'bench' AS scope_name, '{}' AS scope_attributes, 0 AS flags,
       0 AS dropped_attributes_count, 0 AS dropped_events_count, 0 AS dropped_links_count,
       thread_id,
       turn_span AS turn_id,
       CASE WHEN k = 0 THEN true END AS is_turn,
       NULL AS previous_turn_id,
       turn_no * 16 + k AS ingest_seq,
       now()::TIMESTAMP AS received_at
FROM rows
ORDER BY start_ns  -- arrival order: threads interleave as they would on a live collector
"""


def build(
    path: str, threads: int, turns: int, spans: int, long_turns: int = 0, replay: int = 1 << 30
) -> float:
    """Create the store at ``path`` and fill it; returns seconds taken. ``long_turns``
    adds one more thread, ``long-000000``, of that many turns. Each LLM call replays
    at most ``replay`` earlier exchanges of its thread (default: all of them)."""
    started = time.perf_counter()
    con = duckdb.connect(path)
    migrate(con)
    base = 1_790_000_000 * 10**9
    con.execute(
        GENERATE,
        {
            "threads": threads,
            "turns": turns,
            "spans": spans,
            "base": base,
            "first": 0,
            "prefix": "thread-",
            "replay": replay,
        },
    )
    if long_turns:
        con.execute(
            GENERATE,
            {
                "threads": 1,
                "turns": long_turns,
                "spans": spans,
                "base": base,
                "first": threads * turns,
                "prefix": "long-",
                "replay": replay,
            },
        )
    # each trace numbered, as the writer numbers it (otel_threads.store.trace_numbers)
    for statement in NUMBER:
        con.execute(statement)
    con.execute("CHECKPOINT")
    con.close()
    connect(path).close()  # the views, and whatever the store derives
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--threads", type=int, default=100_000)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--spans", type=int, default=10)
    args = ap.parse_args()
    secs = build(args.path, args.threads, args.turns, args.spans)
    total = args.threads * args.turns * args.spans
    print(
        f"built {total:,} spans ({args.threads:,} threads x {args.turns} turns x "
        f"{args.spans} spans) in {secs:.0f}s"
    )


if __name__ == "__main__":
    main()
