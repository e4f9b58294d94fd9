-- 0016: a thread can say it has ended (ThreadContext.end, thread(..., end=True)): a span
-- of its last turn carries otel_threads.thread_ended = true. turns gains ended_at (when
-- the turn said so; NULL when it did not), threads gains ended (its last turn did),
-- ended_at (that mark's time) and reopened_at (a turn came after an end mark: the start
-- of the first turn after the latest one). They fill when the derived tables are built
-- anew at the next open (their SQL changed).
ALTER TABLE turns_mat ADD COLUMN ended_at TIMESTAMP;
ALTER TABLE threads_mat ADD COLUMN ended BOOLEAN;
ALTER TABLE threads_mat ADD COLUMN ended_at TIMESTAMP;
ALTER TABLE threads_mat ADD COLUMN reopened_at TIMESTAMP;
