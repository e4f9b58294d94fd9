-- 0002: the queue of traces whose derived rows (threads, turns, transcripts) are due
-- for re-derivation. The writer adds a batch's trace ids in the batch's own
-- transaction; otel_threads.derive consumes them. An index on trace_id serves the
-- per-trace lookups that re-derivation makes into the large tables.
CREATE TABLE derive_queue (trace_id VARCHAR NOT NULL);
CREATE INDEX spans_trace_id ON spans (trace_id);
CREATE INDEX logs_trace_id ON logs (trace_id);
