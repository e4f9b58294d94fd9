-- 0023: a sequence that only checkpoints draw from. DuckDB 2.0.1 holds every read that
-- filters an indexed table (a thread's page, by thread id) while a checkpoint runs,
-- unless a transaction begun before the newest commit is open then; the store begins a
-- read transaction, commits a number drawn from this sequence, and checkpoints beside it
-- (otel_threads.store.checkpointing).
CREATE SEQUENCE checkpoint_seq;
