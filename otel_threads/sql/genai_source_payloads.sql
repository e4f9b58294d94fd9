-- genai_source_payloads: one row per message found in the request / response payload JSON
-- that an LLM span (genai_spans) carries (GENAI_CONVENTIONS.md 1.3, 4, 6, 8):
--   convention                 request                          response            priority
--   semconv-1.27-span-events   span event gen_ai.content.prompt  gen_ai.content.completion 40
--                              (attribute gen_ai.prompt)         (gen_ai.completion)
--   openinference-io           input.value                       output.value             61
--                              (only read when the llm.input_messages.* keys are missing)
--   vercel-ai-legacy           ai.prompt.messages, else ai.prompt {system, prompt, messages}
--                              ai.response.{text,toolCalls,finishReason} (SDK < 4: ai.result.*,
--                              ai.finishReason)                                           70
--   langsmith                  gen_ai.prompt (run inputs)        gen_ai.completion (outputs) 80
--   mlflow                     mlflow.spanInputs                 mlflow.spanOutputs       100
--   logfire-v1                 request_data                      response_data            110
--   google-adk                 gcp.vertex.agent.llm_request      gcp.vertex.agent.llm_response 120
--   langfuse                   langfuse.observation.input        langfuse.observation.output 130
--
-- A request's messages: a system prompt given apart (system, system_instruction,
-- config.system_instruction, instructions) first, then the first of: messages (LangChain's
-- batch [[...]] reads its first batch), contents (Gemini), input (an array), the payload
-- itself (an array), prompts / prompt / the payload (strings: user messages).
-- A response's messages: choices, generations (LangChain), candidates (Gemini), else the
-- payload as one message (it has a role, a message or a content object), an array of
-- messages, or a string (the assistant's text).
-- msg is the raw message JSON; the messages view parses every shape named here.
WITH carried AS (
    SELECT thread_id, turn_id, trace_id, span_id, family,
           -- one parse of the attributes (VARCHAR: a string's text, a structure's JSON)
           json_transform(attributes, '{
               "input.value": "VARCHAR", "output.value": "VARCHAR",
               "ai.prompt.messages": "VARCHAR", "ai.prompt": "VARCHAR",
               "ai.response.text": "VARCHAR", "ai.result.text": "VARCHAR",
               "ai.response.toolCalls": "VARCHAR", "ai.result.toolCalls": "VARCHAR",
               "ai.response.finishReason": "VARCHAR", "ai.finishReason": "VARCHAR",
               "gen_ai.prompt": "VARCHAR", "gen_ai.completion": "VARCHAR",
               "mlflow.spanInputs": "VARCHAR", "mlflow.spanOutputs": "VARCHAR",
               "request_data": "VARCHAR", "response_data": "VARCHAR",
               "gcp.vertex.agent.llm_request": "VARCHAR",
               "gcp.vertex.agent.llm_response": "VARCHAR",
               "langfuse.observation.input": "VARCHAR",
               "langfuse.observation.output": "VARCHAR"}') AS a,
           CASE WHEN family = 'semconv-1.27-span-events' THEN
               list_filter(json_extract(events, '$[*]'),
                           lambda e: e->>'name' IN ('gen_ai.content.prompt',
                                                     'gen_ai.content.completion'))
           END AS content_events
    FROM genai_spans
    WHERE family IN ('semconv-1.27-span-events', 'openinference', 'vercel-ai-legacy',
                     'langsmith', 'mlflow', 'logfire-v1', 'google-adk', 'langfuse')
),
payloads AS (
    SELECT thread_id, turn_id, trace_id, span_id,
           CASE family WHEN 'openinference' THEN 'openinference-io' ELSE family END
               AS convention,
           CASE family
               WHEN 'semconv-1.27-span-events' THEN 40
               WHEN 'openinference' THEN 61
               WHEN 'vercel-ai-legacy' THEN 70
               WHEN 'langsmith' THEN 80
               WHEN 'mlflow' THEN 100
               WHEN 'logfire-v1' THEN 110
               WHEN 'google-adk' THEN 120
               WHEN 'langfuse' THEN 130
           END AS priority,
           CASE family
               WHEN 'semconv-1.27-span-events' THEN (
                   SELECT coalesce(try(json(x->'attributes'->>'gen_ai.prompt')),
                                   to_json(x->'attributes'->>'gen_ai.prompt'))
                   FROM (SELECT list_filter(content_events, lambda e:
                                    e->>'name' = 'gen_ai.content.prompt')[1] AS x))
               WHEN 'openinference' THEN try(json(a."input.value"))
               WHEN 'vercel-ai-legacy' THEN coalesce(try(json(a."ai.prompt.messages")),
                                                     try(json(a."ai.prompt")),
                                                     to_json(a."ai.prompt"))
               WHEN 'langsmith' THEN try(json(a."gen_ai.prompt"))
               WHEN 'mlflow' THEN try(json(a."mlflow.spanInputs"))
               WHEN 'logfire-v1' THEN try(json(a."request_data"))
               WHEN 'google-adk' THEN try(json(a."gcp.vertex.agent.llm_request"))
               WHEN 'langfuse' THEN coalesce(try(json(a."langfuse.observation.input")),
                                             to_json(a."langfuse.observation.input"))
           END AS request,
           CASE family
               WHEN 'semconv-1.27-span-events' THEN (
                   SELECT coalesce(try(json(x->'attributes'->>'gen_ai.completion')),
                                   to_json(x->'attributes'->>'gen_ai.completion'))
                   FROM (SELECT list_filter(content_events, lambda e:
                                    e->>'name' = 'gen_ai.content.completion')[1] AS x))
               WHEN 'openinference' THEN try(json(a."output.value"))
               WHEN 'vercel-ai-legacy' THEN
                   CASE WHEN coalesce(nullif(a."ai.response.text", ''),
                                      nullif(a."ai.result.text", ''),
                                      a."ai.response.toolCalls",
                                      a."ai.result.toolCalls") IS NOT NULL
                        THEN json_object(
                            'role', 'assistant',
                            'content', nullif(coalesce(a."ai.response.text",
                                                       a."ai.result.text"), ''),
                            'tool_calls', coalesce(try(json(a."ai.response.toolCalls")),
                                                   try(json(a."ai.result.toolCalls"))),
                            'finish_reason', coalesce(a."ai.response.finishReason",
                                                      a."ai.finishReason")) END
               WHEN 'langsmith' THEN try(json(a."gen_ai.completion"))
               WHEN 'mlflow' THEN try(json(a."mlflow.spanOutputs"))
               WHEN 'logfire-v1' THEN try(json(a."response_data"))
               WHEN 'google-adk' THEN try(json(a."gcp.vertex.agent.llm_response"))
               WHEN 'langfuse' THEN coalesce(try(json(a."langfuse.observation.output")),
                                             to_json(a."langfuse.observation.output"))
           END AS response
    FROM carried
),
shaped AS (
    SELECT thread_id, turn_id, trace_id, span_id, convention, priority,
           coalesce(request->'system', request->'system_instruction',
                    request->'systemInstruction', request->'config'->'system_instruction',
                    request->'config'->'systemInstruction', request->'instructions') AS system,
           CASE
               WHEN json_type(request->'messages') = 'ARRAY'
                    AND json_type(request->'messages'->0) = 'ARRAY' THEN request->'messages'->0
               WHEN json_type(request->'messages') = 'ARRAY' THEN request->'messages'
               WHEN json_type(request->'contents') = 'ARRAY' THEN request->'contents'
               WHEN json_type(request->'input') = 'ARRAY' THEN request->'input'
               WHEN json_type(request) = 'ARRAY' AND json_type(request->0) = 'ARRAY'
                   THEN request->0
               WHEN json_type(request) = 'ARRAY' THEN request
               WHEN json_type(request->'prompts') = 'ARRAY' THEN request->'prompts'
               WHEN json_type(request->'prompt') = 'VARCHAR' THEN json_array(request->'prompt')
               WHEN json_type(request->'input') = 'VARCHAR' THEN json_array(request->'input')
               WHEN json_type(request) = 'VARCHAR' THEN json_array(request)
           END AS input,
           CASE
               WHEN json_type(response->'choices') = 'ARRAY' THEN response->'choices'
               WHEN json_type(response->'generations') = 'ARRAY'
                    AND json_type(response->'generations'->0) = 'ARRAY'
                   THEN response->'generations'->0
               WHEN json_type(response->'generations') = 'ARRAY' THEN response->'generations'
               WHEN json_type(response->'candidates') = 'ARRAY' THEN response->'candidates'
               WHEN json_type(response) = 'OBJECT'
                    AND ((response->'role') IS NOT NULL
                         OR json_type(response->'message') = 'OBJECT'
                         OR json_type(response->'content') = 'OBJECT')
                   THEN json_array(response)
               WHEN json_type(response) = 'ARRAY' THEN response
               WHEN json_type(response) = 'VARCHAR' THEN json_array(response)
           END AS output
    FROM payloads
),
listed AS (
    SELECT thread_id, turn_id, trace_id, span_id, convention, priority,
           list_concat(
               CASE WHEN system IS NOT NULL AND json_type(system) <> 'NULL' THEN [{
                   'direction': 'input', 'position': -1, 'role_hint': 'system',
                   'msg': CASE WHEN json_type(system) = 'OBJECT'
                                    AND (system->'parts') IS NOT NULL
                               THEN json_object('role', 'system', 'parts', system->'parts')
                               ELSE json_object('role', 'system', 'content', system) END}] END,
               CASE WHEN json_type(input) = 'ARRAY' THEN list_transform(
                   json_extract(input, '$[*]'), lambda m, i: {
                       'direction': 'input', 'position': i - 1, 'role_hint': NULL::VARCHAR,
                       'msg': m}) END,
               CASE WHEN json_type(output) = 'ARRAY' THEN list_transform(
                   json_extract(output, '$[*]'), lambda m, i: {
                       'direction': 'output', 'position': i - 1, 'role_hint': 'assistant',
                       'msg': m}) END
           ) AS items
    FROM shaped
)
SELECT thread_id, turn_id, trace_id, span_id, convention, priority, item.direction,
       item.position, item.msg, item.role_hint
FROM (SELECT *, unnest(items) AS item FROM listed)
