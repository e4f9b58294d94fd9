-- turn_facts: one row per turn of a thread: what the turn is and holds, from its own
-- spans and LLM calls alone (derive_turns gives each its place in the thread).
-- A turn is known from its turn span, or -- while that span still runs and so is not
-- exported yet -- from the spans that already carry its turn id; such a turn has
-- end_time NULL and is_running true. Statistics cover every stored span of the turn;
-- a redelivered span is stored once, so nothing counts twice.
-- user_id: named on the turn span (the first of these attributes present); models: the
-- distinct models of the turn's LLM calls (the response's, else the request's), sorted;
-- cost_usd: the sum of its calls' known costs (NULL when none is known), and
-- unpriced_call_count its calls of no known cost; ended_at: when the turn said its
-- thread ended (ThreadContext.end): the end, else the start, of the latest of its spans
-- that carry otel_threads.thread_ended = true (a JSON true or the string "true", from
-- any producer); NULL when none does.
--
-- Scoped: a refresh (otel_threads.store.derive) evaluates it over the spans of the turns
-- its traces touch, and keeps the other turns' facts as turns_mat holds them; so each
-- row must follow from the spans and LLM calls of its own turn alone.
WITH members AS (
    SELECT t.thread_id, t.turn_id, s.trace_id, s.span_id, s.start_time, s.end_time,
           s.status_code,
           -- (the substring test first: the JSON of most spans is not parsed for it)
           CASE WHEN contains(s.attributes::VARCHAR, 'otel_threads.thread_ended')
                     AND lower(json_extract_string(s.attributes,
                                                   '$."otel_threads.thread_ended"')) = 'true'
                THEN coalesce(s.end_time, s.start_time) END AS end_mark
    FROM span_threads t
    JOIN spans_raw s ON s.trace_id = t.trace_id AND s.span_id = t.span_id
    WHERE t.thread_id IS NOT NULL AND t.turn_id IS NOT NULL
),
per_turn AS (
    SELECT thread_id, turn_id,
           count(*) AS span_count,
           count(*) FILTER (WHERE status_code = 'ERROR') AS error_span_count,
           min(start_time) AS first_span_start,
           max(end_time) AS last_span_end,
           -- (the turn span's trace: a turn may hold spans of other traces, which
           -- another order of the rows would name; with no turn span, the least one)
           coalesce(min(trace_id) FILTER (WHERE span_id = turn_id), min(trace_id))
               AS turn_trace_id,
           max(end_mark) AS ended_at
    FROM members
    GROUP BY thread_id, turn_id
),
llm AS (
    SELECT thread_id, turn_id, count(*) AS llm_call_count,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           list(DISTINCT coalesce(response_model, request_model)
                ORDER BY coalesce(response_model, request_model))
               FILTER (WHERE coalesce(response_model, request_model) IS NOT NULL) AS models,
           -- (summed exactly: a sum of doubles depends on the order of the rows)
           sum(cost_usd::DECIMAL(38, 12))::DOUBLE AS cost_usd,
           count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_call_count
    FROM llm_calls
    WHERE turn_id IS NOT NULL
    GROUP BY thread_id, turn_id
)
SELECT p.thread_id,
       p.turn_id,
       coalesce(s.trace_id, p.turn_trace_id) AS trace_id,
       s.span_id,
       s.name,
       coalesce(s.start_time, p.first_span_start) AS start_time,
       s.end_time,
       s.duration_ms,
       coalesce(s.status_code, 'UNSET') AS status_code,
       s.status_message,
       s.previous_turn_id,
       p.span_count,
       coalesce(l.llm_call_count, 0) AS llm_call_count,
       coalesce(l.input_tokens, 0) AS input_tokens,
       coalesce(l.output_tokens, 0) AS output_tokens,
       p.error_span_count,
       p.error_span_count > 0 AS has_error,
       s.span_id IS NULL AS is_running,
       s.service_name,
       s.project,
       list_filter(json_extract_string(s.attributes, [
           '$."user.id"', '$."enduser.id"', '$."langfuse.user.id"',
           '$."traceloop.association.properties.user_id"',
           '$."ai.telemetry.metadata.userId"', '$."langsmith.metadata.user_id"']),
           lambda v: v IS NOT NULL)[1] AS user_id,
       coalesce(l.models, []) AS models,
       l.cost_usd,
       coalesce(l.unpriced_call_count, 0) AS unpriced_call_count,
       p.ended_at
FROM per_turn p
LEFT JOIN spans_raw s ON s.trace_id = p.turn_trace_id AND s.span_id = p.turn_id
LEFT JOIN llm l ON l.thread_id = p.thread_id AND l.turn_id = p.turn_id
