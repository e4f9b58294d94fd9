-- 0020: trace numbers in generations. trace_numbers' index by trace id is the one random
-- index the writer adds to with every commit, and DuckDB writes about all of an index
-- that random keys touched at each checkpoint: a cost that followed the number of traces
-- stored (about 127 ms a checkpoint at 2M traces, 22 ms at 250,000). So the numbers are
-- kept in tables of at most 262,144 traces each, trace_numbers_0, trace_numbers_1, ...:
-- the writer adds to the newest alone (otel_threads.store.trace_numbers), and begins the
-- next when it is full; an older one is not written again (but by retention), so its
-- index is not either. The view trace_numbers reads them all (the writer replaces it as
-- it adds one); a lookup through it uses each table's index.
ALTER TABLE trace_numbers RENAME TO trace_numbers_0;
CREATE VIEW trace_numbers AS SELECT * FROM trace_numbers_0;
