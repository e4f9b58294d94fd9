-- derive_thread_attributes: one row per trace and thread that its spans are in: the
-- attribute values those spans carry, hashed (what the threads filter `attributes`
-- matches: some span of the thread carries that value; otel_threads.filters).
--
-- A value is (key, value as text), hashed as md5_number_lower(key || chr(31) || value),
-- a stable hash (so is not DuckDB's hash(), which may change between its versions).
-- It is computed as (md5_number(x) >> 64)::UBIGINT, the same number: DuckDB 2.0.1's
-- md5_number_lower takes 4.5x as long (380 vs 84 ms for 700k strings), and was most of
-- this view's time (tests/test_thread_filters.py checks the two agree).
-- Both span and resource attributes. A value is kept when it is a string, a number or
-- a boolean (as JSON writes it: 42, 0.5, true), or each such element of an array
-- (tags), of at most 256 characters; longer values (prompts, message contents), maps
-- and nulls are not: they are not what a filter names.
--
-- Scoped: this view derives the rows of thread_attributes_mat. It runs over the whole
-- store when that table is built anew, and over the traces a refresh derives
-- (otel_threads.store.derive), so each row must follow from its own trace alone.
WITH spans AS (
    SELECT t.thread_id, s.trace_id, s.attributes, s.resource_attributes
    FROM span_threads t
    JOIN spans_raw s ON s.trace_id = t.trace_id AND s.span_id = t.span_id
    WHERE t.thread_id IS NOT NULL
),
objects AS (
    SELECT thread_id, trace_id, attributes AS object FROM spans
    UNION  -- (a resource's attributes are the same on each of its spans)
    SELECT thread_id, trace_id, resource_attributes FROM spans
),
entries AS (
    -- (an object's keys and its values, each in the order written, zipped: json_each
    -- made a row of eight columns for each, 1.3x the time; bench/thread_attributes.py)
    SELECT thread_id, trace_id, unnest(json_keys(object)) AS key,
           unnest(json_extract(object, '$.*')) AS value
    FROM objects
),
pairs AS (
    -- (a value is JSON text as DuckDB writes it: its first character says its type)
    SELECT thread_id, trace_id, key,
           unnest(CASE WHEN left(value, 1) = '[' THEN list_filter(
                           json_extract(value, '$[*]'),
                           lambda x: json_type(x) NOT IN ('OBJECT', 'ARRAY', 'NULL'))
                       WHEN left(value, 1) IN ('{', 'n') THEN []
                       ELSE [value] END) ->> '$' AS value
    FROM entries
)
SELECT thread_id, trace_id,
       list_sort(list(DISTINCT (md5_number(key || chr(31) || value) >> 64)::UBIGINT))
           AS attribute_hashes
FROM pairs
WHERE length(value) <= 256
GROUP BY thread_id, trace_id
