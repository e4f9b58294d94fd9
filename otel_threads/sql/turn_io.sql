-- turn_io: one row per turn that has messages: its first user message and its last
-- assistant message (whole texts), whichever branch the turn is on. The thread's
-- detail shows them beside each turn (GET /threads/{id}, ThreadsClient.thread).
SELECT thread_id,
       turn_id,
       arg_min(content, thread_seq) FILTER (role = 'user') AS first_input,
       arg_max(content, thread_seq) FILTER (role = 'assistant') AS last_output
FROM transcript_mat
WHERE content IS NOT NULL AND turn_id IS NOT NULL
GROUP BY thread_id, turn_id
