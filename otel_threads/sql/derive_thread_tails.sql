-- derive_thread_tails: one row per thread, what a refresh needs of a thread to derive its
-- new turns from its tail (otel_threads.store.tails, `Tails._tails`): the thread's last
-- turn in turn order (derive_turns: start time, NULLs last, then turn id)
-- and its index, whether a turn of it names a previous turn, its last LLM call in the
-- transcript's order (transcript_rows: start, end, trace, span) and that call's message
-- keys (what transcript_rows compares the next call with), its last transcript
-- number (thread_seq), whether all of its transcript rows are on the current branch, and
-- how many of its spans are in no turn (derive_threads counts them with its turns'), and
-- the number of its first trace with an LLM call (first_call_n: the smallest trace_n of
-- its message keys; a refresh reads the earlier copies of a thread's new message keys
-- from the rows of message_keys_mat numbered from there on, which zone maps find near the
-- thread's time instead of all over the store).
-- Not public: the rows of thread_tails_mat, kept by each refresh.
--
-- Scoped: a refresh evaluates it over the threads it derives whole, while TEMP tables
-- named like its inputs hold every turn, message key, transcript row and span in no turn
-- of theirs; so each row must follow from the rows of its own thread alone.
WITH kept_turns AS (
    SELECT thread_id,
           max(struct_pack(n := start_time IS NULL,
                           s := coalesce(start_time, TIMESTAMP '1970-01-01'),
                           t := turn_id)) AS last_turn,
           arg_max(turn_index, struct_pack(n := start_time IS NULL,
                                           s := coalesce(start_time, TIMESTAMP '1970-01-01'),
                                           t := turn_id)) AS last_turn_index,
           bool_or(previous_turn_id IS NOT NULL) AS linked
    FROM turns
    GROUP BY thread_id
),
kept_calls AS (
    -- (the table, not the view message_keys, which leaves the trace numbers out)
    SELECT thread_id,
           max(struct_pack(s := call_start_unix_nano, n := call_end_unix_nano IS NULL,
                           e := coalesce(call_end_unix_nano, 0), t := trace_id,
                           i := span_id)) AS last_call,
           min(trace_n) AS first_call_n
    FROM message_keys_mat
    GROUP BY thread_id
),
last_keys AS (
    SELECT m.thread_id,
           list(struct_pack(turn_id := m.turn_id, direction := m.direction,
                            position := m.position, role := m.role, k := m.k)
                ORDER BY m.direction, m.position) AS last_call_keys
    FROM message_keys m
    JOIN kept_calls c ON c.thread_id = m.thread_id AND c.last_call.t = m.trace_id
                     AND c.last_call.i = m.span_id
    GROUP BY m.thread_id
),
kept_rows AS (
    SELECT thread_id, max(thread_seq) AS thread_seq, bool_and(on_current_branch) AS on_branch
    FROM transcript_rows
    GROUP BY thread_id
),
loose AS (
    SELECT thread_id, count(*) AS loose_spans
    FROM span_threads
    WHERE thread_id IS NOT NULL AND turn_id IS NULL
    GROUP BY thread_id
)
SELECT thread_id, t.last_turn, t.last_turn_index, t.linked, c.last_call, k.last_call_keys,
       r.thread_seq, r.on_branch, l.loose_spans, c.first_call_n
FROM kept_turns t
FULL JOIN kept_calls c USING (thread_id)
LEFT JOIN last_keys k USING (thread_id)
FULL JOIN kept_rows r USING (thread_id)
FULL JOIN loose l USING (thread_id)
