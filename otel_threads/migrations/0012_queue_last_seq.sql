-- 0012: the queue records the ingest_seq of each commit's last span of a trace too, so a
-- refresh reads a new trace's spans between its first and last commit's (zone maps prune
-- both ends of spans_raw) instead of from its first commit to the end of the table: while
-- derivation works off a backlog, the end of the table is the whole backlog.
ALTER TABLE derive_queue ADD COLUMN last_seq BIGINT;
