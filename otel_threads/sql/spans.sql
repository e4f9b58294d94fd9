-- spans: one row per stored span (spans_raw, unique on trace_id, span_id), with
-- thread_id, turn_id and is_turn RESOLVED: the span's thread and turn as span_threads
-- derives them (a child span takes its turn's thread and turn), so
-- `FROM spans WHERE thread_id = 'x'` returns every span of thread x. A span not derived
-- yet (derivation runs just behind ingest) shows what its own attributes say.
-- previous_turn_id is the span's own otel_threads.previous_turn_id.
-- Two parts, derived and not yet, so that a filter on thread_id reaches span_threads'
-- index in the first and spans_raw's own column in the second (one CASE over both sides
-- would be filtered only after joining every span).
SELECT r.* EXCLUDE (trace_n) REPLACE (t.thread_id AS thread_id, t.turn_id AS turn_id, t.is_turn AS is_turn)
FROM span_threads t
JOIN spans_raw r ON r.trace_id = t.trace_id AND r.span_id = t.span_id
UNION ALL
SELECT r.* EXCLUDE (trace_n)
FROM spans_raw r
LEFT JOIN span_threads t ON t.trace_id = r.trace_id AND t.span_id = r.span_id
WHERE t.span_id IS NULL
