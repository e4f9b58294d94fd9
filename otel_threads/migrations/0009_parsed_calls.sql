-- 0009: each trace's LLM calls and messages as parsed, kept (otel_threads.store.shared_views).
-- A refresh re-derives a thread over all of its traces; parsing every call's JSON again
-- each time was the largest part of a refresh of a long thread. parsed_traces lists the
-- traces whose rows llm_calls_mat and messages_mat hold (a trace with no LLM call has
-- none), as the views llm_calls and messages give them; a trace whose span threads are
-- derived anew is parsed anew. The rows are the views' (same columns); they are a cache:
-- emptied when the views' SQL changes (otel_threads_derived records its version), and a
-- trace missing from it is parsed.
CREATE TABLE parsed_traces (trace_id VARCHAR NOT NULL);
CREATE INDEX parsed_traces_trace_id ON parsed_traces (trace_id);

CREATE TABLE llm_calls_mat (
    thread_id                VARCHAR,
    turn_id                  VARCHAR,
    trace_id                 VARCHAR,
    span_id                  VARCHAR,
    name                     VARCHAR,
    operation                VARCHAR,
    provider                 VARCHAR,
    request_model            VARCHAR,
    response_model           VARCHAR,
    response_id              VARCHAR,
    input_tokens             BIGINT,
    output_tokens            BIGINT,
    total_tokens             BIGINT,
    cache_read_input_tokens  BIGINT,
    cache_write_input_tokens BIGINT,
    reasoning_output_tokens  BIGINT,
    finish_reasons           VARCHAR[],
    start_time               TIMESTAMP,
    end_time                 TIMESTAMP,
    duration_ms              DOUBLE,
    status_code              VARCHAR,
    service_name             VARCHAR,
    convention               VARCHAR,
    message_span_id          VARCHAR
);
CREATE INDEX llm_calls_mat_trace_id ON llm_calls_mat (trace_id);

CREATE TABLE messages_mat (
    thread_id      VARCHAR,
    turn_id        VARCHAR,
    trace_id       VARCHAR,
    span_id        VARCHAR,
    direction      VARCHAR,
    position       BIGINT,
    role           VARCHAR,
    content        VARCHAR,
    tool_calls     JSON,
    tool_call_id   VARCHAR,
    finish_reason  VARCHAR,
    convention     VARCHAR,
    source_span_id VARCHAR,
    name           VARCHAR
);
CREATE INDEX messages_mat_trace_id ON messages_mat (trace_id);
