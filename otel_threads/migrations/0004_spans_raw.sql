-- 0004: the raw span table becomes spans_raw; `spans` is now a view (sql/spans.sql) that
-- gives each span its resolved thread and turn (CONTRACT.md section 2), so
-- `FROM spans WHERE thread_id = 'x'` returns every span of thread x, children included.
-- spans_raw keeps thread_id / turn_id / is_turn / previous_turn_id as the span's own
-- attributes say them (what the derivation starts from). DuckDB renames a table only
-- without its indexes: the trace_id index is made again.
DROP INDEX spans_trace_id;
ALTER TABLE spans RENAME TO spans_raw;
CREATE INDEX spans_raw_trace_id ON spans_raw (trace_id);
