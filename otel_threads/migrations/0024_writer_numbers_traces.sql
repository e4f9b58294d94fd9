-- 0024: the writer numbers new traces itself, on from the largest number given
-- (otel_threads.store.trace_numbers.next_number), where each commit drew its numbers from
-- this sequence before (a statement, and its answer made Python objects, at every commit).
-- It is no longer drawn from; what it gave stays a floor. (And this version keeps an older
-- otel-threads, which would draw numbers given already, from opening the file.)
COMMENT ON SEQUENCE trace_n_seq IS 'numbers given before migration 0024; the writer counts on from the largest given';
