-- transcript: the public view; its rows are derived by derive_transcript.sql and kept in
-- transcript_mat by otel_threads.derive as data arrives. It shows the thread's current
-- branch (transcript_mat also holds the rows of turns on other branches of a fork).
SELECT thread_id, seq, turn_id, role, content, tool_calls, tool_call_id, finish_reason,
       trace_id, span_id, direction, position
FROM transcript_mat
WHERE seq IS NOT NULL  -- seq numbers the rows of the current branch (a faster filter
                       -- than on_current_branch: the thread lookup stays an index scan)
