-- 0013: the attribute values of each thread's spans, hashed and kept per trace
-- (derive_thread_attributes), so the threads filter `attributes` ({key: value}: some
-- span of the thread carries it) reads one narrow column instead of parsing the JSON of
-- every stored span. Filled when the derived tables are built anew at the next open (a
-- derived table with no version).
CREATE TABLE thread_attributes_mat (
    thread_id        VARCHAR,
    trace_id         VARCHAR,
    attribute_hashes UBIGINT[]
);
CREATE INDEX thread_attributes_mat_trace_id ON thread_attributes_mat (trace_id);
