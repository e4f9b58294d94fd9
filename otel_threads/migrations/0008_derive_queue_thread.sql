-- 0008: the queue records each trace's thread as its spans said it (the raw
-- otel_threads / gen_ai thread attribute; NULL for log records and for turns that name
-- only a previous turn). A refresh takes the queued traces of the threads in its batch
-- along with it (otel_threads.store.derive): a thread is derived once for all of its
-- waiting turns, not once per batch that holds one of them.
ALTER TABLE derive_queue ADD COLUMN thread_id VARCHAR;
