-- 0001: the raw OTLP tables.
-- spans: one row per span, unique on (trace_id, span_id) (the writer drops redeliveries).
-- logs: one row per OTLP log record, unique on record_id (a content hash).
-- Ids are lowercase hex; times are UTC TIMESTAMPs (microseconds) plus the exact nanos;
-- attribute maps are JSON objects in the lossless encoding of otel_threads.decode.
CREATE TABLE spans (
    trace_id                 VARCHAR NOT NULL,
    span_id                  VARCHAR NOT NULL,
    parent_span_id           VARCHAR,
    trace_state              VARCHAR,
    name                     VARCHAR,
    kind                     VARCHAR,
    start_time               TIMESTAMP,
    end_time                 TIMESTAMP,
    start_time_unix_nano     BIGINT NOT NULL,
    end_time_unix_nano       BIGINT,
    duration_ms              DOUBLE,
    status_code              VARCHAR,
    status_message           VARCHAR,
    service_name             VARCHAR,
    project                  VARCHAR,
    attributes               JSON,
    events                   JSON,
    links                    JSON,
    resource_attributes      JSON,
    scope_name               VARCHAR,
    scope_version            VARCHAR,
    scope_attributes         JSON,
    flags                    BIGINT,
    dropped_attributes_count INTEGER,
    dropped_events_count     INTEGER,
    dropped_links_count      INTEGER,
    -- derived at write time from the span's own attributes (CONTRACT.md section 2);
    -- inheritance from ancestors happens in the views
    thread_id                VARCHAR,
    turn_id                  VARCHAR,
    is_turn                  BOOLEAN,
    previous_turn_id         VARCHAR,
    -- arrival: a store-wide increasing sequence, and when the receiver took it
    ingest_seq               BIGINT NOT NULL,
    received_at              TIMESTAMP NOT NULL
);

CREATE TABLE logs (
    record_id                VARCHAR NOT NULL,
    trace_id                 VARCHAR,
    span_id                  VARCHAR,
    time                     TIMESTAMP,
    time_unix_nano           BIGINT,
    observed_time_unix_nano  BIGINT,
    severity_number          INTEGER,
    severity_text            VARCHAR,
    event_name               VARCHAR,
    body                     JSON,
    attributes               JSON,
    resource_attributes      JSON,
    scope_name               VARCHAR,
    scope_version            VARCHAR,
    service_name             VARCHAR,
    project                  VARCHAR,
    flags                    BIGINT,
    dropped_attributes_count INTEGER,
    ingest_seq               BIGINT NOT NULL,
    received_at              TIMESTAMP NOT NULL
);
