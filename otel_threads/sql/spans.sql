-- spans: one row per stored span (spans_raw, unique on trace_id, span_id), with
-- thread_id, turn_id and is_turn RESOLVED: the span's thread and turn as span_threads
-- derives them (a child span takes its turn's thread and turn), so
-- `FROM spans WHERE thread_id = 'x'` returns every span of thread x. A span not derived
-- yet (derivation runs just behind ingest) shows what its own attributes say.
-- previous_turn_id is the span's own otel_threads.previous_turn_id.
SELECT r.* REPLACE (
           CASE WHEN t.span_id IS NULL THEN r.thread_id ELSE t.thread_id END AS thread_id,
           CASE WHEN t.span_id IS NULL THEN r.turn_id ELSE t.turn_id END AS turn_id,
           CASE WHEN t.span_id IS NULL THEN r.is_turn ELSE t.is_turn END AS is_turn)
FROM spans_raw r
LEFT JOIN span_threads t ON t.trace_id = r.trace_id AND t.span_id = r.span_id
