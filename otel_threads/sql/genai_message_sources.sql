-- genai_message_sources: one row per message that some carrier of an LLM span holds, in any
-- convention, raw: the thread and turn of the span holding it, its (trace_id, span_id),
-- convention, priority (when one span holds its messages in several carriers, the lowest
-- priority is read; see the genai_source_* views), direction, position (orders the
-- messages within a direction; may have gaps or start at -1 for a system prompt given
-- apart), msg (the message JSON) and role_hint (the role when the message names none).
SELECT thread_id, turn_id, trace_id, span_id, convention, priority, direction, position, msg,
       NULL AS role_hint
FROM genai_source_semconv
UNION ALL BY NAME
SELECT * FROM genai_source_events
UNION ALL BY NAME
SELECT thread_id, turn_id, trace_id, span_id, convention, priority, direction, position, msg,
       NULL AS role_hint
FROM genai_source_flat
UNION ALL BY NAME
SELECT * FROM genai_source_payloads
