-- transcript_rows: which messages of a thread a person reads, in what order: each turn's
-- new user and tool messages and the assistant's replies (seq, 1-based), without the
-- history that every LLM call replays in its input. derive_transcript joins their texts on.
--
-- Scoped: a refresh (otel_threads.store.derive) evaluates it over the message keys and
-- turns of the threads in scope (message_keys holds every message of a thread, narrow),
-- so each row must follow from the rows of its own thread alone.
--
-- Reading order: the thread's LLM calls (llm_calls, with messages) by start time, each
-- call's input before its output, messages by position.
-- Shown: every output message (the model's reply); an input message only when it is new:
--   - a message is keyed by (role, content, its tool calls' names and arguments,
--     tool_call_id: message_keys.k); the k-th copy of a key in a call's input is history
--     when some earlier call of the thread already held k copies of it (input and
--     output together: the previous reply comes back as input), so a user who repeats
--     "yes" in a later turn is still shown;
--   - system messages are shown where they change: when the previous call did not send the
--     same one (so a system prompt shows once, and again after it changed);
--   - the first call of a turn that only replays (a stateless app whose user repeats a
--     question) shows its last non-system input message: the turn's new message.
-- So a tool loop (user -> assistant tool_call -> tool result -> assistant answer, two
-- calls) reads as exactly those four rows, plus the system prompt once.
--
-- Branches: rows are derived for every turn (thread_seq numbers them all); seq numbers
-- those of turns on the thread's current branch (turns.on_current_branch), which the
-- public view `transcript` shows. A regenerated turn replays the same user message, and
-- the replay rule above shows it, so each branch reads whole. Another branch is read
-- by selecting the rows of its turns in thread_seq order (ThreadsClient.thread(...,
-- through_turn=...)).
--
-- Memory: the windows below see narrow rows (ids, positions and a hash of each message,
-- message_keys); the texts join on after (derive_transcript), so however long a message
-- is, it is copied once, not by every window on the way.
WITH msg AS (
    SELECT m.thread_id, m.turn_id, m.trace_id, m.span_id, m.direction, m.position, m.role,
           dense_rank() OVER (PARTITION BY m.thread_id
                              ORDER BY m.call_start_unix_nano, m.call_end_unix_nano,
                                       m.trace_id, m.span_id) AS call_idx,
           m.k,
           m.direction = 'input' AND m.role <> 'system' AS is_prompt
    FROM message_keys m
),
-- one chain of windows, each partitioned by thread first (a filter on thread_id reaches
-- the messages view, so one thread's transcript parses one thread's messages)
counted AS (
    SELECT *,
           row_number() OVER (PARTITION BY thread_id, call_idx, direction, k
                              ORDER BY position) AS occurrence,
           count(*) OVER (PARTITION BY thread_id, call_idx, k) AS copies,
           call_idx = min(call_idx) OVER (PARTITION BY thread_id, turn_id) AS opens_turn
    FROM msg
),
seen AS (
    SELECT *,
           max(copies) OVER (PARTITION BY thread_id, k ORDER BY call_idx
                             RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before,
           max(copies) OVER (PARTITION BY thread_id, k ORDER BY call_idx
                             RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING) AS previous
    FROM counted
),
flagged AS (
    SELECT *,
           CASE WHEN direction = 'output' THEN true
                WHEN role = 'system' THEN occurrence > coalesce(previous, 0)
                ELSE occurrence > coalesce(before, 0) END AS is_new
    FROM seen
),
shown AS (
    SELECT *,
           is_new
           OR (is_prompt AND opens_turn
               AND NOT coalesce(bool_or(is_new AND is_prompt) OVER call, false)
               AND position = max(position) FILTER (WHERE is_prompt) OVER call) AS is_shown
    FROM flagged
    WINDOW call AS (PARTITION BY thread_id, call_idx)
),
branched AS (
    SELECT s.*, coalesce(t.on_current_branch, true) AS on_current_branch
    FROM shown s
    LEFT JOIN turns t ON t.thread_id = s.thread_id AND t.turn_id = s.turn_id
    WHERE s.is_shown
),
numbered AS (
    SELECT thread_id, turn_id, role, trace_id, span_id, direction, position, on_current_branch,
           CASE WHEN on_current_branch THEN
               row_number() OVER (PARTITION BY thread_id, on_current_branch
                                  ORDER BY call_idx, direction = 'output', position) END
               AS seq,
           row_number() OVER (PARTITION BY thread_id
                              ORDER BY call_idx, direction = 'output', position) AS thread_seq
    FROM branched
)
SELECT thread_id, seq, turn_id, role, trace_id, span_id, direction, position, thread_seq,
       on_current_branch
FROM numbered
