-- 0018: trace numbers. Trace ids are random (as producers make them), and DuckDB holds an
-- index (ART) in memory from the first insert into it after a checkpoint to the next, and
-- writes its changed blocks at that checkpoint: with random keys a few hundred inserts
-- touch most of an index, so every table indexed by trace id was held in memory whole and
-- written about whole at each checkpoint (about 70 bytes per trace and table; 561 MiB of
-- indexes on a store of 4.2M spans). So each trace gets a number when it is first stored
-- (trace_numbers, growing with time: the writer gives it, otel_threads.store.trace_numbers),
-- and the tables of rows per trace are indexed by that number (trace_n) instead: new rows
-- land at one edge of each index. trace_numbers keeps the one index by trace id. (The
-- indexes by number: 0019, since DuckDB makes no index over rows updated in the same
-- transaction.)
CREATE SEQUENCE trace_n_seq;
CREATE TABLE trace_numbers (
    trace_id VARCHAR PRIMARY KEY,
    trace_n  BIGINT NOT NULL
);
-- the stored traces, numbered in the order their first span or record arrived (every
-- table's trace ids: a derived row's trace has stored rows, but a number costs little)
INSERT INTO trace_numbers
SELECT trace_id, nextval('trace_n_seq')
FROM (
    SELECT trace_id, min(seq) AS first_seq
    FROM (
        SELECT trace_id, ingest_seq AS seq FROM spans_raw WHERE trace_id IS NOT NULL
        UNION ALL
        SELECT trace_id, ingest_seq FROM logs WHERE trace_id IS NOT NULL
        UNION ALL
        SELECT trace_id, NULL FROM span_threads_mat WHERE trace_id IS NOT NULL
        UNION ALL
        SELECT trace_id, NULL FROM message_keys_mat WHERE trace_id IS NOT NULL
        UNION ALL
        SELECT trace_id, NULL FROM thread_attributes_mat WHERE trace_id IS NOT NULL
        UNION ALL
        SELECT trace_id, NULL FROM call_responses_mat WHERE trace_id IS NOT NULL
        UNION ALL
        SELECT trace_id, NULL FROM annotations_mat WHERE trace_id IS NOT NULL
    )
    GROUP BY trace_id
    ORDER BY first_seq NULLS LAST, trace_id
);
DROP INDEX spans_raw_trace_id;
ALTER TABLE spans_raw ADD COLUMN trace_n BIGINT;
UPDATE spans_raw SET trace_n = k.trace_n FROM trace_numbers k WHERE k.trace_id = spans_raw.trace_id;

DROP INDEX logs_trace_id;
ALTER TABLE logs ADD COLUMN trace_n BIGINT;
UPDATE logs SET trace_n = k.trace_n FROM trace_numbers k WHERE k.trace_id = logs.trace_id;

DROP INDEX span_threads_mat_trace_id;
ALTER TABLE span_threads_mat ADD COLUMN trace_n BIGINT;
UPDATE span_threads_mat SET trace_n = k.trace_n FROM trace_numbers k WHERE k.trace_id = span_threads_mat.trace_id;

DROP INDEX message_keys_mat_trace_id;
ALTER TABLE message_keys_mat ADD COLUMN trace_n BIGINT;
UPDATE message_keys_mat SET trace_n = k.trace_n FROM trace_numbers k WHERE k.trace_id = message_keys_mat.trace_id;

DROP INDEX thread_attributes_mat_trace_id;
ALTER TABLE thread_attributes_mat ADD COLUMN trace_n BIGINT;
UPDATE thread_attributes_mat SET trace_n = k.trace_n FROM trace_numbers k WHERE k.trace_id = thread_attributes_mat.trace_id;

DROP INDEX call_responses_mat_trace_id;
ALTER TABLE call_responses_mat ADD COLUMN trace_n BIGINT;
UPDATE call_responses_mat SET trace_n = k.trace_n FROM trace_numbers k WHERE k.trace_id = call_responses_mat.trace_id;

DROP INDEX annotations_mat_trace_id;
ALTER TABLE annotations_mat ADD COLUMN trace_n BIGINT;
UPDATE annotations_mat SET trace_n = k.trace_n FROM trace_numbers k WHERE k.trace_id = annotations_mat.trace_id;
