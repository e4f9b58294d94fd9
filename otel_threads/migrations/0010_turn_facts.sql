-- 0010: a refresh derives what a new turn adds, not its whole thread again
-- (otel_threads.store.derive). turns gains each turn's user_id and models (turn_facts),
-- so threads aggregates them from turns instead of reading every span and LLM call of
-- the thread; message_keys_mat keeps each message's key and its call's times (per trace,
-- narrow), so a thread's transcript is numbered without parsing or hashing its earlier
-- messages again. Both fill when the derived tables are built anew at the next open
-- (their SQL changed).
ALTER TABLE turns_mat ADD COLUMN user_id VARCHAR;
ALTER TABLE turns_mat ADD COLUMN models VARCHAR[];

CREATE TABLE message_keys_mat (
    thread_id            VARCHAR,
    turn_id              VARCHAR,
    trace_id             VARCHAR,
    span_id              VARCHAR,
    direction            VARCHAR,
    position             BIGINT,
    role                 VARCHAR,
    call_start_unix_nano BIGINT NOT NULL,
    call_end_unix_nano   BIGINT,
    k                    VARCHAR
);
CREATE INDEX message_keys_mat_trace_id ON message_keys_mat (trace_id);
CREATE INDEX message_keys_mat_thread_id ON message_keys_mat (thread_id);
