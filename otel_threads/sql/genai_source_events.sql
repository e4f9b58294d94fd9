-- genai_source_events: one row per message of an LLM span (genai_spans) that arrives as one
-- event per message (GENAI_CONVENTIONS.md 1.3, 6):
--   semconv-1.28-events (priority 30): OTLP log records linked by (trace_id, span_id) named
--     gen_ai.{system,user,assistant,tool,developer,...}.message (input) or gen_ai.choice
--     (output), as openai-v2 <= 2.3b0 / util-genai 0.x, OpenLLMetry's event mode and
--     pydantic-ai's event_mode='logs' send them. The name is LogRecord.event_name or the
--     legacy `event.name` attribute (the store coalesces them). They carry no index: input
--     events are ordered by time, else observed time, then arrival (ingest_seq); choices
--     by their body's index first.
--   pydantic-ai-events (priority 90): pydantic-ai < 1.0's `events` span attribute, a JSON
--     array of the same events, each naming itself in its 'event.name' key.
-- role_hint is the role the event name gives (the body names one only when it differs).
WITH llm AS (
    SELECT thread_id, turn_id, trace_id, span_id, family, attributes FROM genai_spans
),
legacy AS (
    SELECT g.thread_id, g.turn_id, l.trace_id, l.span_id, l.event_name, l.body, l.time_unix_nano,
           l.observed_time_unix_nano, l.ingest_seq,
           l.event_name = 'gen_ai.choice' AS is_choice
    FROM logs l
    JOIN llm g ON g.trace_id = l.trace_id AND g.span_id = l.span_id
    WHERE l.event_name = 'gen_ai.choice' OR l.event_name LIKE 'gen_ai.%.message'
),
pydantic AS (
    SELECT g.thread_id, g.turn_id, g.trace_id, g.span_id,
           try(json(g.attributes->>'events')) AS events
    FROM llm g
    WHERE g.family = 'pydantic-ai-events'
)
SELECT thread_id, turn_id, trace_id, span_id, 'semconv-1.28-events' AS convention,
       30 AS priority,
       CASE WHEN is_choice THEN 'output' ELSE 'input' END AS direction,
       row_number() OVER (
           PARTITION BY thread_id, trace_id, span_id, is_choice
           ORDER BY CASE WHEN is_choice THEN try_cast(body->>'index' AS BIGINT) END NULLS LAST,
                    coalesce(nullif(time_unix_nano, 0), observed_time_unix_nano) NULLS LAST,
                    observed_time_unix_nano NULLS LAST, ingest_seq) - 1 AS position,
       coalesce(body, json_object()) AS msg,
       CASE WHEN is_choice THEN 'assistant'
            ELSE regexp_extract(event_name, '^gen_ai\.(.+)\.message$', 1) END AS role_hint
FROM legacy
UNION ALL
SELECT thread_id, turn_id, trace_id, span_id, 'pydantic-ai-events', 90,
       CASE WHEN e.name = 'gen_ai.choice' THEN 'output' ELSE 'input' END,
       e.position, e.msg,
       CASE WHEN e.name = 'gen_ai.choice' THEN 'assistant'
            ELSE nullif(regexp_extract(e.name, '^gen_ai\.(.+)\.message$', 1), '') END
FROM (SELECT thread_id, turn_id, trace_id, span_id,
             unnest(list_transform(json_extract(events, '$[*]'), lambda m, i: {
                 'position': i - 1, 'msg': m, 'name': m->>'event.name'})) AS e
      FROM pydantic
      WHERE json_type(events) = 'ARRAY')
