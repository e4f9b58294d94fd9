-- thread_attributes: one row per trace of a thread, with the hashes of the attribute
-- values its spans carry (derive_thread_attributes says which values are kept, and how
-- they are hashed). What threads_with_attribute reads here; a store on ClickHouse keeps
-- these rows too (otel_threads.clickhouse), for the same filters.
SELECT thread_id, trace_id, attribute_hashes
FROM thread_attributes_mat
