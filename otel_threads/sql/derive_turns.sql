-- derive_turns: one row per turn of a thread (CONTRACT.md section 2).
-- What a turn is and holds (its span, statistics, tokens, user, models, the end mark it
-- carries) is turn_facts';
-- this view gives each turn its place in the thread: turn_index, its parent, its link
-- and whether it is on the current branch.
--
-- Scoped: this view derives the rows of turns_mat. It runs over the whole store when
-- that table is built anew, and over a scoped subset on every refresh
-- (otel_threads.store.derive): a TEMP table turn_facts then holds the facts of every
-- turn of the threads in scope (those of the turns a refresh did not touch read back
-- from turns_mat), so each row must follow from the facts of its own thread alone.
--
-- Branches. Each turn has a parent_turn_id: the turn it names as previous_turn_id when
-- that is a turn of the same thread, else the turn that started just before it. Two
-- turns with the same parent are a fork (the view forks lists them). The thread's
-- current branch is the path from its first turn to its newest turn; the transcript
-- follows it (on_current_branch).
-- link_status, for a turn that names a previous turn: 'linked' (a turn of this thread),
-- 'missing' (no turn of this thread: not arrived yet, or in another thread), 'cycle'
-- (bad data: its chain of links loops -- a self-link, or a cycle -- or leads into such a
-- loop; the turn is then ordered by start time instead, so nothing walks in circles).
WITH RECURSIVE
-- each turn's own facts (turn_facts), numbered in the thread by start time
base AS (
    SELECT f.*,
           row_number() OVER by_start AS turn_index,
           lag(f.turn_id) OVER by_start AS time_prev
    FROM turn_facts f
    WINDOW by_start AS (PARTITION BY f.thread_id ORDER BY f.start_time, f.turn_id)
),
-- turns whose previous_turn_id is a turn of their own thread
by_link AS (
    SELECT b.thread_id, b.turn_id
    FROM base b
    SEMI JOIN base p ON p.thread_id = b.thread_id AND p.turn_id = b.previous_turn_id
),
tentative AS (
    SELECT b.thread_id, b.turn_id, b.time_prev,
           k.turn_id IS NOT NULL AS is_linked,
           CASE WHEN k.turn_id IS NOT NULL THEN b.previous_turn_id ELSE b.time_prev END
               AS parent,
           bool_or(k.turn_id IS NOT NULL) OVER (PARTITION BY b.thread_id) AS thread_linked
    FROM base b
    LEFT JOIN by_link k ON k.thread_id = b.thread_id AND k.turn_id = b.turn_id
),
-- in threads with links, the turns reachable from a turn without a parent: each turn
-- has one parent, so each is reached once; a turn on (or behind) a cycle never is
reached AS (
    SELECT thread_id, turn_id, 0 AS depth
    FROM tentative
    WHERE thread_linked AND parent IS NULL
    UNION ALL
    SELECT t.thread_id, t.turn_id, r.depth + 1
    FROM reached r
    JOIN tentative t ON t.thread_id = r.thread_id AND t.parent = r.turn_id
    WHERE t.thread_linked AND r.depth < 1000000
),
-- unreached turns fall back to the turn before them in time: no cycle is left (reached
-- turns form trees; a fallback parent always started earlier)
parents AS (
    SELECT t.thread_id, t.turn_id, t.thread_linked,
           CASE WHEN NOT t.thread_linked OR r.turn_id IS NOT NULL THEN t.parent
                ELSE t.time_prev END AS parent_turn_id,
           t.is_linked AND t.thread_linked AND r.turn_id IS NULL AS in_cycle,
           t.is_linked
    FROM tentative t
    LEFT JOIN reached r ON r.thread_id = t.thread_id AND r.turn_id = t.turn_id
),
-- the current branch of threads with links: up from the newest turn
branch AS (
    SELECT p.thread_id, p.turn_id, p.parent_turn_id, 0 AS depth
    FROM parents p
    JOIN (SELECT thread_id, arg_max(turn_id, turn_index) AS turn_id
          FROM base GROUP BY thread_id) n ON n.thread_id = p.thread_id AND n.turn_id = p.turn_id
    WHERE p.thread_linked
    UNION ALL
    SELECT p.thread_id, p.turn_id, p.parent_turn_id, b.depth + 1
    FROM branch b
    JOIN parents p ON p.thread_id = b.thread_id AND p.turn_id = b.parent_turn_id
    WHERE b.depth < 1000000
)
SELECT b.thread_id,
       b.turn_id,
       b.turn_index,
       b.trace_id,
       b.span_id,
       b.name,
       b.start_time,
       b.end_time,
       b.duration_ms,
       b.status_code,
       b.status_message,
       b.previous_turn_id,
       b.span_count,
       b.llm_call_count,
       b.input_tokens,
       b.output_tokens,
       b.error_span_count,
       b.has_error,
       b.is_running,
       b.service_name,
       b.project,
       p.parent_turn_id,
       CASE WHEN b.previous_turn_id IS NULL THEN NULL
            WHEN p.in_cycle THEN 'cycle'
            WHEN p.is_linked THEN 'linked'
            ELSE 'missing' END AS link_status,
       NOT p.thread_linked OR c.turn_id IS NOT NULL AS on_current_branch,
       b.user_id,
       b.models,
       b.cost_usd,
       b.unpriced_call_count,
       b.ended_at
FROM base b
JOIN parents p ON p.thread_id = b.thread_id AND p.turn_id = b.turn_id
LEFT JOIN (SELECT DISTINCT thread_id, turn_id FROM branch) c
    ON c.thread_id = b.thread_id AND c.turn_id = b.turn_id
