-- threads: the public view; its rows are derived by derive_threads.sql and kept in
-- threads_mat by otel_threads.derive as data arrives. annotation_count: the thread's
-- annotations (of the thread, its turns and its spans; the view annotations).
SELECT t.*, coalesce(a.annotation_count, 0) AS annotation_count
FROM threads_mat t
LEFT JOIN (SELECT thread_id, count(*) AS annotation_count FROM annotations
           GROUP BY thread_id) a ON a.thread_id = t.thread_id
