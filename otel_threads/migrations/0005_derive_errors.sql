-- 0005: traces whose derivation failed, set aside so that every other thread goes on
-- deriving (otel_threads.derive). One row per trace: the thread it belongs to (as far
-- as known), the error, when it first and last failed, and how often. A trace is tried
-- again when new data for it (or for its thread) arrives, and its row goes once it
-- derives. No key or index: rows are deleted and written again, and DuckDB indexes on
-- tables that see deletes are what derivation avoids.
CREATE TABLE derive_errors (
    trace_id        VARCHAR NOT NULL,
    thread_id       VARCHAR,
    error           VARCHAR NOT NULL,
    first_failed_at TIMESTAMP NOT NULL,
    last_failed_at  TIMESTAMP NOT NULL,
    failures        INTEGER NOT NULL
);
