-- llm_calls: one row per LLM call: the innermost LLM span of each nest of LLM spans
-- (genai_calls), in any convention of GENAI_CONVENTIONS.md (predicates in genai_llm_spans).
-- A framework span around a client span, or an SDK's own span inside an instrumentation's,
-- is one call, whose row is the inner span's (ids, name, times, status, thread and turn).
--
-- operation, provider, request_model, response_model, response_id, finish_reasons: from
--   the innermost span of the nest that has each (genai_span_meta says how each
--   convention gives them); finish_reasons else from the call's output messages.
-- tokens (input, output, total, cache_read_input, cache_write_input, reasoning_output):
--   all from the innermost span of the nest that carries token counts.
-- convention: where its messages are read (see messages), else the convention its span
--   matched (family in genai_llm_spans).
-- message_span_id: the span of the nest whose messages the messages view reads.
-- cost_usd: the producer's cost for the call (genai_span_meta), else its tokens at the
--   price model_prices holds for its provider and response model (else request model);
--   NULL when neither is known (otel_threads.prices resolves the prices).
WITH carriers AS (
    SELECT thread_id, trace_id, span_id, priority, any_value(convention) AS convention,
           list(coalesce(msg->>'finish_reason', msg->>'finishReason',
                         msg->'generation_info'->>'finish_reason', msg->>'stop_reason')
                ORDER BY position) FILTER (WHERE direction = 'output') AS finishes
    FROM genai_message_sources
    GROUP BY thread_id, trace_id, span_id, priority
),
members AS (
    -- one row per span of each nest with its metadata, and one per span of each nest that
    -- carries messages (its best carrier); thread_id leads the grouping below, so a filter
    -- on it reaches genai_spans through both
    SELECT g.thread_id, c.trace_id, c.call_span_id, c.depth, m.* EXCLUDE (trace_id, span_id),
           CASE WHEN c.depth = 0 THEN {
               'turn_id': g.turn_id, 'name': g.name, 'start_time': g.start_time,
               'end_time': g.end_time, 'duration_ms': g.duration_ms,
               'status_code': g.status_code, 'service_name': g.service_name,
               'family': g.family} END AS call
    FROM genai_calls c
    JOIN genai_spans g ON g.trace_id = c.trace_id AND g.span_id = c.call_span_id
    JOIN genai_span_meta m ON m.trace_id = c.trace_id AND m.span_id = c.span_id
    UNION ALL BY NAME
    SELECT s.thread_id, s.trace_id, c.call_span_id, c.depth, s.span_id AS message_span_id,
           s.convention, list_filter(s.finishes, lambda f: f IS NOT NULL) AS finishes
    FROM (SELECT * FROM carriers
          QUALIFY row_number() OVER (PARTITION BY thread_id, trace_id, span_id
                                     ORDER BY priority) = 1) s
    JOIN genai_calls c ON c.trace_id = s.trace_id AND c.span_id = s.span_id
),
per_call AS (
    SELECT thread_id, trace_id, call_span_id,
           arg_min(operation, depth) FILTER (WHERE operation IS NOT NULL) AS operation,
           arg_min(provider, depth) FILTER (WHERE provider IS NOT NULL) AS provider,
           arg_min(request_model, depth) FILTER (WHERE request_model IS NOT NULL)
               AS request_model,
           arg_min(response_model, depth) FILTER (WHERE response_model IS NOT NULL)
               AS response_model,
           arg_min(response_id, depth) FILTER (WHERE response_id IS NOT NULL) AS response_id,
           arg_min(finish_reasons, depth) FILTER (WHERE finish_reasons IS NOT NULL)
               AS finish_reasons,
           arg_min(input_tokens, depth) FILTER (WHERE has_tokens) AS input_tokens,
           arg_min(output_tokens, depth) FILTER (WHERE has_tokens) AS output_tokens,
           arg_min(total_tokens, depth) FILTER (WHERE has_tokens) AS total_tokens,
           arg_min(cache_read_input_tokens, depth) FILTER (WHERE has_tokens)
               AS cache_read_input_tokens,
           arg_min(cache_write_input_tokens, depth) FILTER (WHERE has_tokens)
               AS cache_write_input_tokens,
           arg_min(reasoning_output_tokens, depth) FILTER (WHERE has_tokens)
               AS reasoning_output_tokens,
           arg_min(producer_cost_usd, depth) FILTER (WHERE producer_cost_usd IS NOT NULL)
               AS producer_cost_usd,
           arg_min(convention, depth) FILTER (WHERE message_span_id IS NOT NULL)
               AS convention,
           arg_min(message_span_id, depth) FILTER (WHERE message_span_id IS NOT NULL)
               AS message_span_id,
           arg_min(finishes, depth) FILTER (WHERE message_span_id IS NOT NULL) AS finishes,
           any_value(call) FILTER (WHERE call IS NOT NULL) AS call
    FROM members
    GROUP BY thread_id, trace_id, call_span_id
),
-- the price of the call's model: its response model's, else its request model's
priced AS (
    SELECT p.*,
           -- (a price file's entry wins for either model, then genai-prices')
           CASE WHEN r.source LIKE 'price file:%' THEN r WHEN q.source LIKE 'price file:%' THEN q
                WHEN r.source IS NOT NULL THEN r WHEN q.source IS NOT NULL THEN q END AS price,
           coalesce(p.input_tokens, 0) AS n_in
    FROM per_call p
    LEFT JOIN model_prices r
        ON r.provider IS NOT DISTINCT FROM p.provider AND r.model = p.response_model
    LEFT JOIN model_prices q
        ON q.provider IS NOT DISTINCT FROM p.provider AND q.model = p.request_model
),
-- each price at the call's tier (the last tier whose start its input tokens pass)
rates AS (
    SELECT *,
           list_transform(
               [price.input_mtok, price.cache_read_mtok, price.cache_write_mtok,
                price.output_mtok],
               lambda r: coalesce(list_last(list_filter(r.tiers, lambda t: n_in > t.start)).price,
                                  r.base)) AS rate
    FROM priced
)
SELECT p.thread_id, p.call.turn_id, p.trace_id, p.call_span_id AS span_id, p.call.name,
       p.operation, p.provider, p.request_model, p.response_model, p.response_id,
       p.input_tokens, p.output_tokens, p.total_tokens, p.cache_read_input_tokens,
       p.cache_write_input_tokens, p.reasoning_output_tokens,
       coalesce(p.finish_reasons,
                CASE WHEN len(p.finishes) > 0 THEN list_transform(p.finishes, lambda f:
                    coalesce(x.finish_reasons[replace(lower(f), '-', '_')], lower(f))) END)
           AS finish_reasons,
       p.call.start_time, p.call.end_time, p.call.duration_ms, p.call.status_code,
       p.call.service_name, coalesce(p.convention, p.call.family) AS convention,
       p.message_span_id,
       -- cost: the producer's, else tokens at the model's price (NULL when no price is
       -- known, or the call reported no tokens). Input tokens include cached ones: those
       -- read or written at a price of their own are charged at it, the rest at input's.
       -- (a producer's cost that is not a number of dollars a call can cost -- negative,
       -- NaN, infinite, absurd -- is not taken: it falls back to the price)
       coalesce(CASE WHEN p.producer_cost_usd BETWEEN 0 AND 1e9 THEN p.producer_cost_usd END,
                CASE
           WHEN p.price IS NULL OR (p.input_tokens IS NULL AND p.output_tokens IS NULL)
               THEN NULL
           ELSE (coalesce(p.rate[1], 0) * greatest(0, p.n_in
                     - CASE WHEN p.rate[2] IS NULL THEN 0
                            ELSE coalesce(p.cache_read_input_tokens, 0) END
                     - CASE WHEN p.rate[3] IS NULL THEN 0
                            ELSE coalesce(p.cache_write_input_tokens, 0) END)
                 + coalesce(p.rate[2] * p.cache_read_input_tokens, 0)
                 + coalesce(p.rate[3] * p.cache_write_input_tokens, 0)
                 + coalesce(p.rate[4] * p.output_tokens, 0)) / 1e6
                + coalesce(p.price.requests_kcount / 1e3, 0)
       END) AS cost_usd
FROM rates p
CROSS JOIN genai_aliases x
