-- span_threads: the public view; its rows are derived by derive_span_threads.sql and kept in
-- span_threads_mat by otel_threads.derive as data arrives.
SELECT * EXCLUDE (trace_n) FROM span_threads_mat
