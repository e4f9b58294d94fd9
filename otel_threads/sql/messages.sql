-- messages: one row per message of an LLM call (llm_calls): the messages sent to the model
-- (direction 'input') and the choices it answered (direction 'output'), position 0-based
-- within each direction. Tool calls and tool results are messages too; a system prompt
-- given apart from the history (gen_ai.system_instructions, Anthropic's system, Gemini's
-- system_instruction) is the first input message.
--
-- Which messages: those of the innermost span of the call's nest (genai_calls) that
-- carries any, from its best carrier (lowest priority): a call whose content arrives
-- twice (span attributes and an event, SPAN_AND_EVENT) is read once.
--
-- convention names where they were read (listed by carrier in the genai_source_* views):
--   semconv-1.37              gen_ai.input/output.messages, gen_ai.system_instructions
--                             span attributes (JSON string or structured)
--   semconv-1.37-event        log record gen_ai.client.inference.operation.details
--   semconv-1.37-span-event   span event gen_ai.client.inference.operation.details
--   semconv-1.28-events       log records gen_ai.*.message / gen_ai.choice (1.28-1.36)
--   semconv-1.27-span-events  span events gen_ai.content.prompt / .completion
--   openllmetry-flat          gen_ai.prompt.{i}.* / gen_ai.completion.{i}.* (OpenLLMetry <= 0.54)
--   openllmetry-json          semconv JSON attributes on OpenLLMetry >= 0.55 spans
--   openinference             llm.input_messages.{i}.* / llm.output_messages.{i}.*
--   openinference-io          OpenInference input.value / output.value (raw request, response)
--   vercel-ai-legacy          ai.prompt.messages, ai.response.* (Vercel AI SDK telemetry)
--   langsmith                 gen_ai.prompt / gen_ai.completion run inputs and outputs
--   pydantic-ai-events        pydantic-ai < 1.0 `events` attribute
--   mlflow                    mlflow.spanInputs / mlflow.spanOutputs
--   logfire-v1                Logfire request_data / response_data
--   google-adk                gcp.vertex.agent.llm_request / llm_response
--   langfuse                  langfuse.observation.input / output
--
-- One parser reads every message shape those carry: semconv {role, parts[]}; OpenAI chat
-- {role, content (string or parts), tool_calls[{id, function{name, arguments}}],
-- tool_call_id, function_call}; choices {message, finish_reason}; Anthropic content blocks
-- (text, tool_use, tool_result); Vercel parts (tool-call, tool-result); Gemini
-- {role, parts[{text}, {function_call}, {function_response}]} and candidates {content};
-- LangChain serialized messages ({lc, id[..., 'AIMessage'], kwargs}) and generations.
--   role: lower-cased, aliases mapped (genai_aliases: developer -> system, function -> tool,
--     model / ai -> assistant, human -> user); a user message made only of tool results
--     (pydantic-ai before v6, Gemini function_response, Anthropic tool_result) is 'tool'.
--   content: the text parts concatenated (a tool result's response is its text; reasoning,
--     images and other media are not text); NULL when there is none.
--   tool_calls: JSON array of {"id", "name", "arguments"}, arguments a JSON value when the
--     source is an object or a JSON string that parses, else the string; NULL when none.
--   tool_call_id: the id of the tool call a tool result answers.
--   finish_reason (output only): the message's own, else the span's
--     gen_ai.response.finish_reasons at that position, normalised (genai_aliases).
--   source_span_id: the span of the nest the message was read from; name: the
--   participant name a message gives (OpenAI's name, a tool message's function name).
WITH finish AS (
    SELECT trace_id, span_id, finish_reasons FROM genai_span_meta
),
picked AS (
    -- (thread_id leads every partition: a filter on it reaches genai_spans)
    SELECT s.thread_id, s.turn_id, c.trace_id, c.call_span_id, s.span_id AS source_span_id,
           s.convention, s.direction, s.position, s.msg, s.role_hint
    FROM genai_message_sources s
    JOIN genai_calls c ON c.trace_id = s.trace_id AND c.span_id = s.span_id
    QUALIFY dense_rank() OVER (PARTITION BY s.thread_id, c.trace_id, c.call_span_id
                               ORDER BY c.depth, s.priority) = 1
),
numbered AS (
    -- positions 0-based within each direction (sources may start at -1 or leave gaps)
    SELECT * REPLACE (row_number() OVER (PARTITION BY thread_id, trace_id, call_span_id,
                                                      direction
                                         ORDER BY position) - 1 AS position)
    FROM picked
),
-- each message JSON is read once into a struct (json_transform), its parts likewise
outer_read AS (
    SELECT *,
           json_transform(r, '{"role": "VARCHAR", "message": "JSON", "content": "JSON",
                               "lc": "JSON", "kwargs": "JSON", "tool_calls": "JSON",
                               "finish_reason": "VARCHAR", "finishReason": "VARCHAR",
                               "generation_info": "JSON"}') AS o
    FROM (SELECT *,
                 CASE WHEN json_type(msg) = 'OBJECT' THEN msg
                      ELSE json_object('content', msg) END AS r
          FROM numbered)
),
unwrapped AS (
    -- a choice / generation / candidate wraps the message: {message | content, finish_reason}
    SELECT *,
           CASE WHEN is_choice AND json_type(o.message) = 'OBJECT' THEN o.message
                WHEN is_choice THEN o.content
                ELSE r END AS u
    FROM (SELECT *,
                 coalesce(o.role IS NULL
                          AND (json_type(o.message) = 'OBJECT'
                               OR (json_type(o.content) = 'OBJECT'
                                   AND ((o.content->'parts') IS NOT NULL
                                        OR (o.content->'role') IS NOT NULL))), false)
                     AS is_choice
          FROM outer_read)
),
inner_read AS (
    -- LangChain serialises a message as {lc, id: [..., 'AIMessage'], kwargs: {...}}
    SELECT *,
           json_transform(CASE WHEN is_lc THEN u->'kwargs' ELSE u END, '{
               "role": "VARCHAR", "type": "VARCHAR", "content": "JSON", "parts": "JSON",
               "text": "JSON", "tool_calls": "JSON", "function_call": "JSON",
               "tool_call_id": "VARCHAR", "toolCallId": "VARCHAR", "tool_use_id": "VARCHAR",
               "id": "VARCHAR", "name": "VARCHAR", "finish_reason": "VARCHAR",
               "finishReason": "VARCHAR", "stop_reason": "VARCHAR"}') AS m,
           CASE WHEN is_lc THEN lower(json_extract_string(u, '$.id[#-1]')) END AS lc_class
    FROM (SELECT *,
                 CASE WHEN NOT is_choice THEN o.lc IS NOT NULL AND json_type(o.kwargs) = 'OBJECT'
                      ELSE (u->'lc') IS NOT NULL AND json_type(u->'kwargs') = 'OBJECT' END
                     AS is_lc
          FROM unwrapped)
),
parts_read AS (
    SELECT *,
           list_transform(
               CASE WHEN json_type(m.content) = 'ARRAY' THEN json_extract(m.content, '$[*]')
                    WHEN json_type(m.parts) = 'ARRAY' THEN json_extract(m.parts, '$[*]')
                    ELSE []::JSON[] END,
               lambda p: json_transform(
                   CASE WHEN json_type(p) = 'VARCHAR' THEN json_object('type', 'text', 'text', p)
                        ELSE p END, '{
                   "type": "VARCHAR", "content": "JSON", "text": "VARCHAR", "thought": "VARCHAR",
                   "id": "VARCHAR", "toolCallId": "VARCHAR", "call_id": "VARCHAR",
                   "tool_use_id": "VARCHAR", "name": "VARCHAR", "toolName": "VARCHAR",
                   "arguments": "JSON", "input": "JSON", "args": "JSON", "output": "JSON",
                   "response": "VARCHAR", "result": "VARCHAR",
                   "function_call": "JSON", "functionCall": "JSON",
                   "function_response": "JSON", "functionResponse": "JSON"}')) AS raw_parts
    FROM inner_read
),
parts AS (
    -- every part as {kind: text | call | result | NULL (reasoning, media, ...), text, id,
    -- name, arguments}: semconv, OpenAI, Anthropic, Vercel and Gemini part shapes
    SELECT *,
           list_transform(raw_parts, lambda p: {
               'kind': CASE
                   WHEN p.type IN ('tool_call', 'tool-call', 'tool_use', 'function_call')
                        OR p.function_call IS NOT NULL OR p.functionCall IS NOT NULL
                       THEN 'call'
                   WHEN p.type IN ('tool_call_response', 'tool-result', 'tool_result',
                                   'function_call_output', 'function_response')
                        OR p.function_response IS NOT NULL OR p.functionResponse IS NOT NULL
                       THEN 'result'
                   WHEN p.type IN ('text', 'input_text', 'output_text')
                        OR (p.type IS NULL AND p.text IS NOT NULL
                            AND coalesce(p.thought, 'false') <> 'true')
                       THEN 'text' END,
               'text': CASE
                   WHEN p.type IN ('text', 'input_text', 'output_text') OR p.type IS NULL
                       THEN coalesce(p.content->>'$', p.text,
                                     coalesce(p.function_response,
                                              p.functionResponse)->>'response')
                   WHEN json_type(p.output) = 'OBJECT' AND (p.output->'value') IS NOT NULL
                       THEN p.output->>'value'
                   WHEN p.output IS NOT NULL THEN p.output->>'$'
                   WHEN json_type(p.content) = 'ARRAY' THEN array_to_string(list_transform(
                       json_extract(p.content, '$[*]'), lambda q:
                           CASE WHEN json_type(q) = 'VARCHAR' THEN q->>'$'
                                ELSE q->>'text' END), '')
                   ELSE coalesce(p.response, p.result, p.content->>'$',
                                 coalesce(p.function_response,
                                          p.functionResponse)->>'response') END,
               'id': coalesce(p.toolCallId, p.id, p.call_id, p.tool_use_id,
                              coalesce(p.function_call, p.functionCall,
                                       p.function_response, p.functionResponse)->>'id'),
               'name': coalesce(p.toolName, p.name,
                                coalesce(p.function_call, p.functionCall)->>'name'),
               'arguments': coalesce(p.arguments, p.input, p.args,
                                     coalesce(p.function_call, p.functionCall)->'args')
           }) AS parts
    FROM parts_read
),
fields AS (
    SELECT *,
           CASE
               WHEN json_array_length(m.tool_calls) > 0 THEN list_transform(
                   json_extract(m.tool_calls, '$[*]'), lambda t: json_transform(t, '{
                       "id": "VARCHAR", "toolCallId": "VARCHAR", "call_id": "VARCHAR",
                       "name": "VARCHAR", "toolName": "VARCHAR", "function": "JSON",
                       "arguments": "JSON", "args": "JSON", "input": "JSON"}'))
               WHEN is_choice AND json_array_length(o.tool_calls) > 0 THEN list_transform(
                   json_extract(o.tool_calls, '$[*]'), lambda t: json_transform(t, '{
                       "id": "VARCHAR", "toolCallId": "VARCHAR", "call_id": "VARCHAR",
                       "name": "VARCHAR", "toolName": "VARCHAR", "function": "JSON",
                       "arguments": "JSON", "args": "JSON", "input": "JSON"}'))
           END AS listed_calls,
           lower(coalesce(
               m.role, lc_class,
               CASE WHEN lower(m.type) IN ('human', 'ai', 'system', 'tool', 'function',
                                           'developer', 'user', 'assistant') THEN m.type END,
               role_hint,
               CASE direction WHEN 'output' THEN 'assistant' ELSE 'user' END)) AS role_raw
    FROM parts
),
calls AS (
    SELECT *,
           CASE
               WHEN listed_calls IS NOT NULL THEN list_transform(listed_calls, lambda t: {
                   'id': coalesce(t.id, t.toolCallId, t.call_id),
                   'name': coalesce(t.function->>'name', t.name, t.toolName),
                   'arguments': coalesce(t.function->'arguments', t.arguments, t.args, t.input)})
               WHEN json_type(m.function_call) = 'OBJECT' THEN [{
                   'id': NULL::VARCHAR, 'name': m.function_call->>'name',
                   'arguments': m.function_call->'arguments'}]
               ELSE list_transform(list_filter(parts, lambda p: p.kind = 'call'), lambda p: {
                   'id': p.id, 'name': p.name, 'arguments': p.arguments})
           END AS calls
    FROM fields
),
normalised AS (
    SELECT c.thread_id, c.turn_id, c.trace_id, c.call_span_id, c.source_span_id, c.convention,
           c.direction, c.position,
           CASE WHEN coalesce(x.roles[c.role_raw], c.role_raw) = 'user' AND len(c.parts) > 0
                     AND len(list_filter(c.parts, lambda p: p.kind = 'result')) = len(c.parts)
                THEN 'tool'
                ELSE coalesce(x.roles[c.role_raw], c.role_raw) END AS role,
           nullif(CASE
               WHEN json_type(c.m.content) IN ('VARCHAR', 'OBJECT', 'BIGINT', 'UBIGINT',
                                               'DOUBLE', 'BOOLEAN') THEN c.m.content->>'$'
               WHEN len(c.parts) > 0 THEN array_to_string(list_transform(
                   list_filter(c.parts, lambda p: p.kind IN ('text', 'result')),
                   lambda p: p.text), '')
               WHEN json_type(c.m.text) = 'VARCHAR' THEN c.m.text->>'$'
           END, '') AS content,
           CASE WHEN len(c.calls) > 0 THEN to_json(list_transform(c.calls, lambda t: {
               'id': t.id,
               'name': t.name,
               'arguments': CASE WHEN json_type(t.arguments) = 'VARCHAR'
                                 THEN coalesce(try(json(t.arguments->>'$')), t.arguments)
                                 ELSE t.arguments END})) END AS tool_calls,
           coalesce(c.m.tool_call_id, c.m.toolCallId, c.m.tool_use_id,
                    CASE WHEN c.role_raw IN ('tool', 'function', 'toolmessage', 'ipython')
                         THEN c.m.id END,
                    list_filter(c.parts, lambda p: p.kind = 'result')[1].id) AS tool_call_id,
           CASE WHEN c.direction = 'output' THEN nullif(coalesce(
               c.o.finish_reason, c.o.finishReason, c.o.generation_info->>'finish_reason',
               c.m.finish_reason, c.m.finishReason, c.m.stop_reason), '') END AS finish_raw,
           c.m.name AS name
    FROM calls c
    CROSS JOIN genai_aliases x
)
SELECT n.thread_id, n.turn_id, n.trace_id, n.call_span_id AS span_id, n.direction, n.position,
       n.role, n.content, n.tool_calls, n.tool_call_id,
       CASE WHEN n.direction = 'output' THEN coalesce(
           x.finish_reasons[replace(lower(n.finish_raw), '-', '_')], lower(n.finish_raw),
           src.finish_reasons[n.position + 1], call.finish_reasons[n.position + 1]) END
           AS finish_reason,
       n.convention, n.source_span_id, n.name
FROM normalised n
CROSS JOIN genai_aliases x
LEFT JOIN finish src ON src.trace_id = n.trace_id AND src.span_id = n.source_span_id
LEFT JOIN finish call ON call.trace_id = n.trace_id AND call.span_id = n.call_span_id
