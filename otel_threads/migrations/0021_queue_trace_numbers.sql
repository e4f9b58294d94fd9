-- 0021: a queued trace's number. The writer numbers a trace in the commit that queues it
-- (otel_threads.store.trace_numbers), so its queue row can carry the number: a refresh
-- then reads its batch's rows through the tables' trace_n indexes without first looking
-- the batch's ids up in trace_numbers (a lookup of each id through every generation's
-- index: 22 ms for a batch of 1,024 traces). Rows queued otherwise (a rebuild, a price
-- or an evaluation arriving later), and those queued before this migration, have none:
-- their traces are looked up.
ALTER TABLE derive_queue ADD COLUMN trace_n BIGINT;
