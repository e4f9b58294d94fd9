-- genai_source_flat: one row per message that an LLM span (genai_spans) spreads over flat,
-- indexed attribute keys (GENAI_CONVENTIONS.md 3, 4), rebuilt into one message JSON
-- {role, content, name, tool_call_id, finish_reason, tool_calls[{id, name, arguments}]}:
--   openllmetry-flat (priority 50): gen_ai.prompt.{i}.* (input), gen_ai.completion.{i}.*
--     (output); the very early llm.prompts.{i}.* / llm.completions.{i}.*. Fields role,
--     content (a JSON string of raw OpenAI parts when multi-part), tool_call_id,
--     finish_reason, tool_calls.{j}.{id,name,arguments}, function_call.{name,arguments};
--     the legacy completions API's gen_ai.prompt.{i}.user is a user message.
--   openinference (priority 60): llm.input_messages.{i}.message.* / llm.output_messages.{i}
--     .message.*: role, content, name, tool_call_id, contents.{j}.message_content.{type,text},
--     tool_calls.{j}.tool_call.{id,function.name,function.arguments}.
WITH flat AS (
    -- keys and values in the same order, in two parses (json_each would join on the
    -- whole document); only spans with an indexed key go on
    SELECT thread_id, turn_id, trace_id, span_id, json_keys(attributes) AS keys,
           json_extract_string(attributes, '$.*') AS vals
    FROM genai_spans
    WHERE list_bool_or(list_transform(json_keys(attributes), lambda key: regexp_matches(key,
              '^(gen_ai\.(prompt|completion)|llm\.(prompts|completions|'
              || 'input_messages|output_messages))\.\d+\.')))
),
kv AS (
    SELECT thread_id, turn_id, trace_id, span_id, unnest(keys) AS key, unnest(vals) AS v
    FROM flat
),
split AS (
    SELECT thread_id, turn_id, trace_id, span_id, v,
           regexp_extract(key,
               '^(gen_ai\.prompt|gen_ai\.completion|llm\.prompts|llm\.completions|'
               || 'llm\.input_messages|llm\.output_messages)\.(\d+)\.(.+)$',
               ['prefix', 'i', 'field']) AS k
    FROM kv
    WHERE regexp_matches(key, '^(gen_ai\.(prompt|completion)|llm\.(prompts|completions|'
                              || 'input_messages|output_messages))\.\d+\.')
),
fields AS (
    SELECT thread_id, turn_id, trace_id, span_id, k.prefix, TRY_CAST(k.i AS INTEGER) AS i,
           regexp_replace(k.field, '^message\.', '') AS field, v
    FROM split
    WHERE TRY_CAST(k.i AS INTEGER) IS NOT NULL  -- an index past INTEGER: not a message
),
tool_calls AS (
    SELECT thread_id, turn_id, trace_id, span_id, prefix, i,
           -- '' (not NULL) where the pattern's group did not take part: function_call.*
           coalesce(TRY_CAST(nullif(t.j, '') AS INTEGER), 0) AS j,
           max(v) FILTER (WHERE t.part = 'id') AS id,
           max(v) FILTER (WHERE t.part = 'name') AS name,
           max(v) FILTER (WHERE t.part = 'arguments') AS arguments
    FROM (SELECT *, regexp_extract(field,
                 '^(?:tool_calls\.(\d+)\.(?:tool_call\.)?(?:function\.)?|function_call\.)'
                 || '(id|name|arguments)$', ['j', 'part']) AS t
          FROM fields) f
    WHERE t.part <> ''
    GROUP BY ALL
),
tool_call_lists AS (
    SELECT thread_id, turn_id, trace_id, span_id, prefix, i,
           to_json(list({'id': id, 'name': name, 'arguments': arguments} ORDER BY j))
               AS tool_calls
    FROM tool_calls
    GROUP BY ALL
),
content_parts AS (
    SELECT thread_id, turn_id, trace_id, span_id, prefix, i,
           to_json(list({'type': type, 'text': text} ORDER BY j)) AS parts
    FROM (SELECT thread_id, turn_id, trace_id, span_id, prefix, i,
                 TRY_CAST(c.j AS INTEGER) AS j,
                 max(v) FILTER (WHERE c.part = 'type') AS type,
                 max(v) FILTER (WHERE c.part = 'text') AS text
          FROM (SELECT *, regexp_extract(field,
                       '^contents\.(\d+)\.message_content\.(type|text)$', ['j', 'part']) AS c
                FROM fields) f
          WHERE c.part <> ''
          GROUP BY ALL)
    GROUP BY ALL
),
scalars AS (
    SELECT thread_id, turn_id, trace_id, span_id, prefix, i,
           max(v) FILTER (WHERE field = 'role') AS role,
           max(v) FILTER (WHERE field IN ('content', 'user')) AS content,
           bool_or(field = 'user') AS is_prompt,
           max(v) FILTER (WHERE field = 'name') AS name,
           max(v) FILTER (WHERE field = 'tool_call_id') AS tool_call_id,
           max(v) FILTER (WHERE field = 'finish_reason') AS finish_reason
    FROM fields
    GROUP BY ALL
)
SELECT s.thread_id, s.turn_id, s.trace_id, s.span_id,
       CASE WHEN s.prefix LIKE 'llm.%messages' THEN 'openinference' ELSE 'openllmetry-flat' END
           AS convention,
       CASE WHEN s.prefix LIKE 'llm.%messages' THEN 60 ELSE 50 END AS priority,
       CASE WHEN s.prefix IN ('gen_ai.completion', 'llm.completions', 'llm.output_messages')
            THEN 'output' ELSE 'input' END AS direction,
       s.i AS position,
       json_object(
           'role', coalesce(s.role, CASE WHEN s.is_prompt THEN 'user' END),
           'content', coalesce(
               p.parts,
               CASE WHEN s.content LIKE '[%'
                         AND json_type(try(json(s.content))) = 'ARRAY'
                         AND (json(s.content)->0->>'type') IS NOT NULL
                    THEN json(s.content) END,
               to_json(s.content)),
           'name', s.name,
           'tool_call_id', s.tool_call_id,
           'finish_reason', s.finish_reason,
           'tool_calls', t.tool_calls) AS msg
FROM scalars s
LEFT JOIN tool_call_lists t
    ON t.thread_id IS NOT DISTINCT FROM s.thread_id AND t.trace_id = s.trace_id
   AND t.span_id = s.span_id AND t.prefix = s.prefix AND t.i = s.i
LEFT JOIN content_parts p
    ON p.thread_id IS NOT DISTINCT FROM s.thread_id AND p.trace_id = s.trace_id
   AND p.span_id = s.span_id AND p.prefix = s.prefix AND p.i = s.i
