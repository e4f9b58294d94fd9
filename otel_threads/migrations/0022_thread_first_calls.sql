-- 0022: thread_tails_mat gains first_call_n, the number of a thread's first trace with an
-- LLM call (sql/derive_thread_tails.sql). A refresh that derives a thread from its tail
-- looks up the earlier copies of its new message keys (what the transcript's rule for
-- repeated messages asks) in message_keys_mat: by a join, which read every row of the
-- table, a cost that followed the store (15 ms a refresh of 1,024 traces at 1.4M spans,
-- 36 ms at 3.8M); from the thread's first call on, zone maps skip the row groups before
-- it. The rows are derived anew when the store opens (derive_thread_tails changed), from
-- the other derived tables as they are: no trace is derived again.
ALTER TABLE thread_tails_mat ADD COLUMN first_call_n BIGINT;
