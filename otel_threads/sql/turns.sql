-- turns: the public view; its rows are derived by derive_turns.sql and kept in
-- turns_mat by otel_threads.derive as data arrives.
SELECT * FROM turns_mat
