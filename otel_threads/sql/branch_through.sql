-- branch_through: a table macro, not a view (it takes the thread and the turn):
--     SELECT * FROM branch_through('thread id', 'turn id') ORDER BY position
-- One row per turn of the branch through that turn, first to last (position 1 is the
-- thread's first turn): the turn's ancestors, the turn itself, and on down to the
-- newest turn below it (at each fork, the child whose branch holds the newest turn).
-- The current branch (turns.on_current_branch) is the branch through the first turn.
-- No rows when the turn is not a turn of that thread. (parent_turn_id never loops:
-- derive_turns breaks cycles; the depth bound guards anyway.)
-- macro parameters: p_thread_id, p_turn_id
WITH RECURSIVE
mine AS MATERIALIZED (
    SELECT turn_id, parent_turn_id, turn_index FROM turns WHERE thread_id = p_thread_id
),
below AS (
    SELECT turn_id, turn_index, 0 AS depth FROM mine WHERE turn_id = p_turn_id
    UNION ALL
    SELECT m.turn_id, m.turn_index, b.depth + 1
    FROM below b
    JOIN mine m ON m.parent_turn_id = b.turn_id
    WHERE b.depth < 1000000
),
newest AS (
    SELECT arg_max(turn_id, turn_index) AS turn_id FROM below
),
up AS (
    SELECT m.turn_id, m.parent_turn_id, 0 AS steps
    FROM mine m
    JOIN newest n ON m.turn_id = n.turn_id
    UNION ALL
    SELECT m.turn_id, m.parent_turn_id, u.steps + 1
    FROM up u
    JOIN mine m ON m.turn_id = u.parent_turn_id
    WHERE u.steps < 1000000
)
SELECT turn_id, row_number() OVER (ORDER BY steps DESC) AS position
FROM up
