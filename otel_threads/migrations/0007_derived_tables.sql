-- 0007: the derived tables belong to the schema. Each holds the rows of the view
-- sql/derive_<name>.sql, kept current by otel_threads.store.derive; the public views
-- (span_threads, turns, transcript, threads) read them. Earlier versions created them
-- outside the migrations: they are dropped here and derived again when the file opens
-- (otel_threads_derived records which SQL derived the rows each table holds).
DROP TABLE IF EXISTS span_threads_mat;
DROP TABLE IF EXISTS turns_mat;
DROP TABLE IF EXISTS transcript_mat;
DROP TABLE IF EXISTS threads_mat;
CREATE TABLE IF NOT EXISTS otel_threads_derived (
    name    VARCHAR PRIMARY KEY,
    version VARCHAR NOT NULL
);
DELETE FROM otel_threads_derived;

CREATE TABLE span_threads_mat (
    trace_id         VARCHAR,
    span_id          VARCHAR,
    parent_span_id   VARCHAR,
    thread_id        VARCHAR,
    turn_id          VARCHAR,
    is_turn          BOOLEAN,
    depth            INTEGER,
    in_cycle         BOOLEAN,
    thread_from_link BOOLEAN,
    refused          BOOLEAN
);
CREATE INDEX span_threads_mat_trace_id ON span_threads_mat (trace_id);
CREATE INDEX span_threads_mat_thread_id ON span_threads_mat (thread_id);

CREATE TABLE turns_mat (
    thread_id         VARCHAR,
    turn_id           VARCHAR,
    turn_index        BIGINT,
    trace_id          VARCHAR,
    span_id           VARCHAR,
    name              VARCHAR,
    start_time        TIMESTAMP,
    end_time          TIMESTAMP,
    duration_ms       DOUBLE,
    status_code       VARCHAR,
    status_message    VARCHAR,
    previous_turn_id  VARCHAR,
    span_count        BIGINT,
    llm_call_count    BIGINT,
    input_tokens      HUGEINT,
    output_tokens     HUGEINT,
    error_span_count  BIGINT,
    has_error         BOOLEAN,
    is_running        BOOLEAN,
    service_name      VARCHAR,
    project           VARCHAR,
    parent_turn_id    VARCHAR,
    link_status       VARCHAR,
    on_current_branch BOOLEAN
);
CREATE INDEX turns_mat_thread_id ON turns_mat (thread_id);
CREATE INDEX turns_mat_turn_id ON turns_mat (turn_id);

CREATE TABLE transcript_mat (
    thread_id         VARCHAR,
    seq               BIGINT,
    turn_id           VARCHAR,
    role              VARCHAR,
    content           VARCHAR,
    tool_calls        JSON,
    tool_call_id      VARCHAR,
    finish_reason     VARCHAR,
    trace_id          VARCHAR,
    span_id           VARCHAR,
    direction         VARCHAR,
    position          BIGINT,
    thread_seq        BIGINT,
    on_current_branch BOOLEAN
);
CREATE INDEX transcript_mat_thread_id ON transcript_mat (thread_id);

CREATE TABLE threads_mat (
    thread_id              VARCHAR,
    project                VARCHAR,
    turn_count             BIGINT,
    start_time             TIMESTAMP,
    last_updated           TIMESTAMP,
    first_turn_id          VARCHAR,
    last_turn_id           VARCHAR,
    p50_turn_duration_ms   DOUBLE,
    p99_turn_duration_ms   DOUBLE,
    span_count             BIGINT,
    llm_call_count         HUGEINT,
    error_turn_count       BIGINT,
    input_tokens           HUGEINT,
    output_tokens          HUGEINT,
    first_input            VARCHAR,
    last_output            VARCHAR,
    fork_count             BIGINT,
    running_turn_count     BIGINT,
    duration_ms            DOUBLE,
    total_turn_duration_ms DOUBLE,
    user_id                VARCHAR,
    models                 VARCHAR[],
    service_name           VARCHAR,
    cycle_turn_count       BIGINT
);
CREATE INDEX threads_mat_thread_id ON threads_mat (thread_id);
