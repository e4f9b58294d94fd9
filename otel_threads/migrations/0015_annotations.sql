-- 0015: annotations (the view `annotations`, sql/annotations.sql): judgements of a
-- thread, a turn or a span, made by people and programs.
--
-- annotation_records: those made through the API, the command line, the web page or
-- an evaluator (`otel-threads eval`); an API-made one can be deleted. source is 'api'
-- or the evaluator's name; turn_id is NULL for the whole thread, and trace_id / span_id
-- name the turn's span.
CREATE TABLE annotation_records (
    annotation_id VARCHAR NOT NULL,
    thread_id     VARCHAR NOT NULL,
    turn_id       VARCHAR,
    trace_id      VARCHAR,
    span_id       VARCHAR,
    name          VARCHAR NOT NULL,
    label         VARCHAR,
    score         DOUBLE,
    explanation   VARCHAR,
    source        VARCHAR NOT NULL,
    author        VARCHAR,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX annotation_records_thread_id ON annotation_records (thread_id);

-- evaluation_runs: one row per (evaluator, thread, the thread's last turn) an evaluator
-- has judged, written in the same transaction as its results: what `otel-threads eval`
-- skips when it runs again. error: why the evaluator failed on it (it is not run on the
-- same last turn again; a new turn gives it another try).
CREATE TABLE evaluation_runs (
    evaluator    VARCHAR NOT NULL,
    thread_id    VARCHAR NOT NULL,
    last_turn_id VARCHAR,
    finished_at  TIMESTAMP NOT NULL,
    result_count INTEGER NOT NULL,
    error        VARCHAR
);

-- response_evaluations: OTLP evaluation events (log records named
-- gen_ai.evaluation.result) that name no span, only the response they judge
-- (gen_ai.response.id): kept apart when they arrive, so that deriving the trace of the
-- LLM call with that response id finds them (derive_annotations).
CREATE TABLE response_evaluations (
    record_id   VARCHAR NOT NULL,
    response_id VARCHAR NOT NULL,
    name        VARCHAR,
    label       VARCHAR,
    score       DOUBLE,
    explanation VARCHAR,
    author      VARCHAR,
    created_at  TIMESTAMP
);

-- threads gains annotation_count: the thread's annotations, counted when it is derived
-- and kept as annotations are added and deleted (otel_threads.store.annotating).
ALTER TABLE threads_mat ADD COLUMN annotation_count BIGINT;

-- annotations_mat: the rows of derive_annotations (OTLP evaluation events about the
-- spans of threads), derived per trace like the other derived tables (0007).
CREATE TABLE annotations_mat (
    annotation_id VARCHAR,
    thread_id     VARCHAR,
    turn_id       VARCHAR,
    trace_id      VARCHAR,
    span_id       VARCHAR,
    name          VARCHAR,
    label         VARCHAR,
    score         DOUBLE,
    explanation   VARCHAR,
    source        VARCHAR,
    author        VARCHAR,
    created_at    TIMESTAMP
);
CREATE INDEX annotations_mat_trace_id ON annotations_mat (trace_id);
CREATE INDEX annotations_mat_thread_id ON annotations_mat (thread_id);

-- call_responses_mat: the response id of each LLM call of a thread (derive_call_responses),
-- derived per trace: where an evaluation that names only a response id finds the trace to
-- derive again when that trace was derived before it arrived.
CREATE TABLE call_responses_mat (
    trace_id    VARCHAR,
    span_id     VARCHAR,
    thread_id   VARCHAR,
    response_id VARCHAR
);
CREATE INDEX call_responses_mat_trace_id ON call_responses_mat (trace_id);
