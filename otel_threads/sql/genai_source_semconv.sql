-- genai_source_semconv: one row per message that an LLM span (genai_spans) carries in the
-- semconv >= 1.37 form (GENAI_CONVENTIONS.md 1.2, 1.3): gen_ai.system_instructions (one
-- system message, before the input), gen_ai.input.messages, gen_ai.output.messages, each
-- a JSON string or a structured AnyValue (read as VARCHAR, then parsed: both alike).
--
-- Carriers (convention, priority: a lower one wins when a span has several, so
-- SPAN_AND_EVENT mode yields the messages once):
--   span attributes                                   semconv-1.37 (openllmetry-json for
--                                                     OpenLLMetry's spans)          10
--   log record gen_ai.client.inference.operation.details on the span   semconv-1.37-event 20
--   span event of that name                           semconv-1.37-span-event      21
-- msg is the raw message JSON ({role, parts[], finish_reason?}); the messages view parses it.
-- An output message with no parts whose call is only in OpenLLMetry's flat keys
-- gen_ai.completion.{i}.function_call.{id,name,arguments} (LiteLLM) takes it from there.
WITH llm AS (
    SELECT thread_id, turn_id, trace_id, span_id, family, attributes, events FROM genai_spans
),
carriers AS (
    SELECT thread_id, turn_id, trace_id, span_id,
           CASE WHEN family = 'openllmetry-json' THEN 'openllmetry-json'
                ELSE 'semconv-1.37' END AS convention,
           10 AS priority, attributes AS a
    FROM llm
    UNION ALL
    SELECT g.thread_id, g.turn_id, l.trace_id, l.span_id, 'semconv-1.37-event', 20, l.attributes
    FROM logs l
    JOIN llm g ON g.trace_id = l.trace_id AND g.span_id = l.span_id
    WHERE l.event_name = 'gen_ai.client.inference.operation.details'
    UNION ALL
    SELECT thread_id, turn_id, trace_id, span_id, 'semconv-1.37-span-event', 21,
           e->'attributes'
    FROM (SELECT thread_id, turn_id, trace_id, span_id, unnest(list_filter(
              json_extract(events, '$[*]'),
              lambda e: e->>'name' = 'gen_ai.client.inference.operation.details')) AS e
          FROM llm)
),
decoded AS (
    SELECT thread_id, turn_id, trace_id, span_id, convention, priority,
           k."gen_ai.system_instructions" AS sys_text,
           try(json(k."gen_ai.system_instructions")) AS sys,
           try(json(k."gen_ai.input.messages")) AS input,
           try(json(k."gen_ai.output.messages")) AS output,
           a
    FROM (SELECT *,
                 -- one parse of the attributes (VARCHAR: a string's text, a structure's JSON)
                 json_transform(a, '{"gen_ai.system_instructions": "VARCHAR",
                                     "gen_ai.input.messages": "VARCHAR",
                                     "gen_ai.output.messages": "VARCHAR"}') AS k
          FROM carriers)
    WHERE k."gen_ai.system_instructions" IS NOT NULL OR k."gen_ai.input.messages" IS NOT NULL
       OR k."gen_ai.output.messages" IS NOT NULL
),
listed AS (
    SELECT thread_id, turn_id, trace_id, span_id, convention, priority,
           list_concat(
               CASE WHEN sys_text IS NOT NULL THEN [{
                   'direction': 'input', 'position': -1,
                   'msg': CASE json_type(sys)
                       WHEN 'ARRAY' THEN json_object('role', 'system', 'parts', sys)
                       WHEN 'OBJECT' THEN json_object('role', 'system', 'parts', json_array(sys))
                       WHEN 'VARCHAR' THEN json_object('role', 'system', 'content', sys)
                       ELSE json_object('role', 'system', 'content', sys_text) END}] END,
               CASE WHEN json_type(input) = 'ARRAY' THEN list_transform(
                   json_extract(input, '$[*]'),
                   lambda m, i: {'direction': 'input', 'position': i - 1, 'msg': m}) END,
               CASE WHEN json_type(output) = 'ARRAY' THEN list_transform(
                   json_extract(output, '$[*]'),
                   lambda m, i: {'direction': 'output', 'position': i - 1, 'msg': CASE
                       WHEN json_array_length(m->'parts') = 0
                            AND json_type(a, '$."gen_ai.completion.' || (i - 1)
                                             || '.function_call.name"') = 'VARCHAR'
                           THEN json_merge_patch(m, json_object('tool_calls', json_array(
                               json_object(
                                   'id', a->>('$."gen_ai.completion.' || (i - 1)
                                              || '.function_call.id"'),
                                   'name', a->>('$."gen_ai.completion.' || (i - 1)
                                                || '.function_call.name"'),
                                   'arguments', a->>('$."gen_ai.completion.' || (i - 1)
                                                     || '.function_call.arguments"')))))
                       ELSE m END}) END
           ) AS items
    FROM decoded
)
SELECT thread_id, turn_id, trace_id, span_id, convention, priority, item.direction,
       item.position, item.msg
FROM (SELECT *, unnest(items) AS item FROM listed)
