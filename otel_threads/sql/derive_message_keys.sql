-- derive_message_keys: one row per message of a thread's LLM calls (messages), narrow:
-- where its call falls in time and the key the transcript compares messages by
-- (transcript_rows). Derived per trace and kept (message_keys), so a refresh that
-- adds a turn to a long thread orders and compares the thread's messages without
-- parsing or hashing the earlier ones again.
--
-- k, a message's key: (role, content, its tool calls' names and arguments, tool_call_id),
-- not the calls' ids, which some producers leave out of the reply and put in the history
-- that replays it (LiteLLM); the texts go in as their hashes, so the key compares as the
-- texts would. (thread_id, trace_id, span_id, direction, position) is a message's key in
-- messages.
--
-- Scoped: this view derives the rows of message_keys_mat. It runs over the whole store
-- when that table is built anew, and over the traces a refresh derives
-- (otel_threads.store.derive), so each row must follow from its own trace alone.
SELECT m.thread_id, m.turn_id, m.trace_id, m.span_id, m.direction, m.position, m.role,
       s.start_time_unix_nano AS call_start_unix_nano,
       s.end_time_unix_nano AS call_end_unix_nano,
       md5(to_json({'role': m.role, 'content': md5(m.content),
                    'tool_calls': list_transform(json_extract(m.tool_calls, '$[*]'),
                                                 lambda c: [(c->'name')::VARCHAR,
                                                            md5((c->'arguments')::VARCHAR)]),
                    'tool_call_id': m.tool_call_id})::VARCHAR) AS k
FROM messages m
JOIN spans_raw s ON s.trace_id = m.trace_id AND s.span_id = m.span_id
WHERE m.thread_id IS NOT NULL
