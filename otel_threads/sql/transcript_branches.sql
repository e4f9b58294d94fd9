-- transcript_branches: the messages of every branch of each thread, not only the
-- current one (the view transcript): thread_seq orders all of a thread's messages;
-- on_current_branch marks those of its current branch. Reading another branch is
-- keeping the rows of its turns (and those of no turn), in thread_seq order.
SELECT thread_id, turn_id, role, content, tool_calls, tool_call_id, finish_reason,
       trace_id, span_id, direction, position, thread_seq, on_current_branch
FROM transcript_mat
