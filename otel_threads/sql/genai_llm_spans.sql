-- genai_llm_spans: one row per stored span that is an LLM call span in one of the
-- conventions of GENAI_CONVENTIONS.md (section 8), before nested LLM spans are merged into
-- one call (genai_calls does that): its identity, attributes and events, and the
-- convention its predicate matched (family). genai_spans adds its thread and turn; its
-- call metadata is in genai_span_meta.
--
-- Predicates, first match wins; a span its producer marks as something else (a LangSmith
-- chain, an OpenInference TOOL, an MLflow AGENT, a Langfuse span) is no call:
--   langsmith.span.kind = 'llm'                                     -> langsmith
--   openinference.span.kind = 'LLM'                                 -> openinference
--   mlflow.spanType = '"CHAT_MODEL"' or '"LLM"' (JSON-encoded)      -> mlflow
--   ai.operationId ai.{generate,stream}{Text,Object}[.do{Generate,Stream}]
--                                                                   -> vercel-ai-legacy
--   langfuse.observation.type = 'generation'                        -> langfuse
--   name = 'call_llm'                                               -> google-adk
--   name 'chat ...' with an `events` attribute                      -> pydantic-ai-events
--   request_data holding messages                                   -> logfire-v1
--   llm.request.type chat / completion                              -> openllmetry-flat
--                                        (openllmetry-json when it has semconv messages)
--   gen_ai.operation.name chat, text_completion, generate_content (or the old completion,
--     generate)                                   -> openllmetry-json (OpenLLMetry's marks),
--     semconv-1.37 (gen_ai.provider.name or semconv messages), else semconv-1.28-events
--   gen_ai.system with gen_ai.content.* span events or a request model
--                                                                   -> semconv-1.27-span-events
WITH keyed AS (
    -- one parse of the attributes per span (they can hold a whole conversation), and
    -- only of spans whose attribute text names one of the keys the predicates read: a
    -- substring test is far cheaper than parsing every span's JSON; one regular
    -- expression, "(key|key|...)": (RE2 reads the text once; ten `contains`, one per
    -- key, read it ten times: 4x the time)
    SELECT s.*,
           json_transform(s.attributes, '{
               "gen_ai.operation.name": "VARCHAR", "gen_ai.provider.name": "VARCHAR",
               "gen_ai.system": "VARCHAR", "gen_ai.request.model": "VARCHAR",
               "gen_ai.input.messages": "VARCHAR", "gen_ai.output.messages": "VARCHAR",
               "gen_ai.is_streaming": "VARCHAR", "llm.is_streaming": "VARCHAR",
               "llm.request.type": "VARCHAR", "traceloop.span.kind": "VARCHAR",
               "traceloop.entity.name": "VARCHAR", "langsmith.span.kind": "VARCHAR",
               "openinference.span.kind": "VARCHAR", "mlflow.spanType": "VARCHAR",
               "ai.operationId": "VARCHAR", "langfuse.observation.type": "VARCHAR",
               "events": "VARCHAR", "request_data": "VARCHAR"}') AS k
    FROM spans_raw s
    WHERE s.name = 'call_llm'
       OR regexp_matches(s.attributes::VARCHAR,
                         '"(gen_ai\.operation\.name|gen_ai\.system|llm\.request\.type|'
                         || 'langsmith\.span\.kind|openinference\.span\.kind|mlflow\.spanType|'
                         || 'ai\.operationId|langfuse\.observation\.type|events|request_data)":')
),
candidates AS (
    SELECT *,
           CASE
               WHEN k."langsmith.span.kind" IS NOT NULL THEN
                   CASE WHEN lower(k."langsmith.span.kind") = 'llm' THEN 'langsmith' END
               WHEN k."openinference.span.kind" IS NOT NULL THEN
                   CASE WHEN upper(k."openinference.span.kind") = 'LLM' THEN 'openinference' END
               WHEN k."mlflow.spanType" IS NOT NULL THEN
                   CASE WHEN k."mlflow.spanType" IN ('"CHAT_MODEL"', '"LLM"', 'CHAT_MODEL', 'LLM')
                        THEN 'mlflow' END
               WHEN k."ai.operationId" IN (
                   'ai.generateText', 'ai.generateText.doGenerate',
                   'ai.streamText', 'ai.streamText.doStream',
                   'ai.generateObject', 'ai.generateObject.doGenerate',
                   'ai.streamObject', 'ai.streamObject.doStream')
                   THEN 'vercel-ai-legacy'
               WHEN k."langfuse.observation.type" IS NOT NULL THEN
                   CASE WHEN k."langfuse.observation.type" = 'generation' THEN 'langfuse' END
               WHEN name = 'call_llm' THEN 'google-adk'
               WHEN name LIKE 'chat %' AND k."events" IS NOT NULL THEN 'pydantic-ai-events'
               WHEN (try(json(k."request_data"))->'messages') IS NOT NULL THEN 'logfire-v1'
               WHEN k."llm.request.type" IN ('chat', 'completion') THEN
                   CASE WHEN k."gen_ai.input.messages" IS NOT NULL
                             OR k."gen_ai.output.messages" IS NOT NULL
                        THEN 'openllmetry-json' ELSE 'openllmetry-flat' END
               WHEN lower(k."gen_ai.operation.name") IN ('chat', 'text_completion',
                                                         'generate_content', 'completion',
                                                         'generate') THEN
                   CASE WHEN k."gen_ai.is_streaming" IS NOT NULL
                             OR k."llm.is_streaming" IS NOT NULL
                             OR k."traceloop.span.kind" IS NOT NULL
                             OR k."traceloop.entity.name" IS NOT NULL
                             OR regexp_matches(name, '^[A-Za-z0-9_]+\.(chat|completion)$')
                            THEN 'openllmetry-json'
                        WHEN k."gen_ai.provider.name" IS NOT NULL
                             OR k."gen_ai.input.messages" IS NOT NULL
                             OR k."gen_ai.output.messages" IS NOT NULL
                            THEN 'semconv-1.37'
                        ELSE 'semconv-1.28-events' END
               WHEN k."gen_ai.system" IS NOT NULL
                    AND (k."gen_ai.request.model" IS NOT NULL
                         OR list_contains(json_extract_string(events, '$[*].name'),
                                          'gen_ai.content.prompt')
                         OR list_contains(json_extract_string(events, '$[*].name'),
                                          'gen_ai.content.completion'))
                   THEN 'semconv-1.27-span-events'
           END AS family
    FROM keyed
)
SELECT trace_id, span_id, parent_span_id, name, kind, start_time, end_time,
       start_time_unix_nano, end_time_unix_nano, duration_ms, status_code, status_message,
       service_name, scope_name, family, attributes, events
FROM candidates
WHERE family IS NOT NULL
