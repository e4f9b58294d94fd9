-- 0019: the indexes by trace number of the tables of rows per trace (0018 numbered the
-- rows, in a transaction of its own: DuckDB makes no index over rows updated in the same
-- transaction).
CREATE INDEX spans_raw_trace_n ON spans_raw (trace_n);
CREATE INDEX logs_trace_n ON logs (trace_n);
CREATE INDEX span_threads_mat_trace_n ON span_threads_mat (trace_n);
CREATE INDEX message_keys_mat_trace_n ON message_keys_mat (trace_n);
CREATE INDEX thread_attributes_mat_trace_n ON thread_attributes_mat (trace_n);
CREATE INDEX call_responses_mat_trace_n ON call_responses_mat (trace_n);
CREATE INDEX annotations_mat_trace_n ON annotations_mat (trace_n);
