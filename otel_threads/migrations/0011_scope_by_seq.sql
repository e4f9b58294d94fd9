-- 0011: a refresh derives each trace from its own spans, once (otel_threads.store.derive):
-- the kept parses of 0009 are no longer read (a new turn's calls are parsed once, with the
-- turn; its messages' keys are kept in message_keys_mat), so they go. The queue records
-- the ingest_seq of each commit's first span of a trace: a trace never derived has all of
-- its spans from there on, so a refresh reads them from the recent end of spans_raw
-- (zone maps prune the rest, however large the store) instead of scanning it whole; and
-- the bytes of content the commit brought for it (attributes and events, log bodies and
-- attributes), which bound a refresh's batch without reading the spans again.
DROP TABLE parsed_traces;
DROP TABLE llm_calls_mat;
DROP TABLE messages_mat;
DELETE FROM otel_threads_derived WHERE name = '(parsed)';
ALTER TABLE derive_queue ADD COLUMN first_seq BIGINT;
ALTER TABLE derive_queue ADD COLUMN bytes BIGINT;
