-- message_keys: one row per message of a thread's LLM calls: when its call ran and the
-- key the transcript compares it by (derive_message_keys.sql derives the rows;
-- otel_threads.derive keeps them in message_keys_mat as data arrives).
SELECT * EXCLUDE (trace_n) FROM message_keys_mat
