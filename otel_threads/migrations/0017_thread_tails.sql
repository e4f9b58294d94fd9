-- 0017: thread_tails_mat: one narrow row per thread, what a refresh needs to know of a
-- thread to derive its new turns from its tail (otel_threads.store.thread_rows): its
-- last turn (in turn order) and that turn's index, whether any of its turns names a
-- previous turn, its last LLM call (in the transcript's order) and that call's message
-- keys (message_keys_mat: what the transcript compares a new call with), its last
-- transcript number, whether all of its transcript rows are on the current branch, and
-- how many of its spans are in no turn. Kept by each refresh
-- (sql/derive_thread_tails.sql), so that a refresh reads one row of a thread instead of
-- every kept row of it. A store from before it gets its rows when it opens, from the
-- other derived tables as they are (no trace is derived again: Deriver.rebuild).
CREATE TABLE thread_tails_mat (
    thread_id       VARCHAR,
    last_turn       STRUCT(n BOOLEAN, s TIMESTAMP, t VARCHAR),
    last_turn_index BIGINT,
    linked          BOOLEAN,
    last_call       STRUCT(s BIGINT, n BOOLEAN, e BIGINT, t VARCHAR, i VARCHAR),
    last_call_keys  STRUCT(turn_id VARCHAR, direction VARCHAR, "position" BIGINT,
                           role VARCHAR, k VARCHAR)[],
    thread_seq      BIGINT,
    on_branch       BOOLEAN,
    loose_spans     BIGINT
);
