-- derive_transcript: one row per message of a thread's conversation as a person reads it
-- (CONTRACT.md section 2): the rows transcript_rows chooses and numbers, with their texts.
--
-- Scoped: this view derives the rows of transcript_mat. It runs over the whole store when
-- that table is built anew; a refresh (otel_threads.store.derive) evaluates it over the
-- rows of transcript_rows it writes, with the messages of their traces, so each row must
-- follow from its own row of transcript_rows and its own message.
SELECT n.thread_id, n.seq, n.turn_id, n.role, m.content, m.tool_calls, m.tool_call_id,
       m.finish_reason, n.trace_id, n.span_id, n.direction, n.position, n.thread_seq,
       n.on_current_branch
FROM transcript_rows n
JOIN messages m ON m.thread_id = n.thread_id AND m.trace_id = n.trace_id
               AND m.span_id = n.span_id AND m.direction = n.direction
               AND m.position = n.position
