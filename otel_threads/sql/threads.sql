-- threads: the public view; its rows are derived by derive_threads.sql and kept in
-- threads_mat by otel_threads.derive as data arrives.
SELECT * FROM threads_mat
