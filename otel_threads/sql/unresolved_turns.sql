-- unresolved_turns: linked turns (they name a previous turn and carry no thread id)
-- whose thread is not known yet, because their chain of links
--   - reaches a turn that has not arrived: status 'pending', waiting_for names it (late
--     data is normal: they join their thread when it arrives);
--   - loops (a self-link or a cycle, in bad data): status 'cycle'.
-- Their spans are stored; span_threads shows them with no thread.
WITH RECURSIVE
waiting AS (
    SELECT l.trace_id, l.turn_id, min(l.previous_turn_id) AS previous_turn_id,
           min(l.start_time) AS start_time
    FROM linked_turns l
    WHERE l.thread_id IS NULL
      AND l.turn_id NOT IN (SELECT turn_id FROM turns)
      AND l.turn_id NOT IN (SELECT turn_id FROM rejected_turns)
    GROUP BY l.trace_id, l.turn_id
),
walk AS (
    SELECT turn_id AS start, previous_turn_id AS next, [turn_id] AS path
    FROM waiting
    UNION ALL
    SELECT w.start, o.previous_turn_id, list_append(w.path, o.turn_id)
    FROM walk w
    JOIN waiting o ON o.turn_id = w.next
    WHERE NOT list_contains(w.path, o.turn_id)
),
ends AS (
    SELECT start, arg_max(next, len(path)) AS next, arg_max(path, len(path)) AS path
    FROM walk
    GROUP BY start
)
SELECT o.trace_id,
       o.turn_id,
       o.previous_turn_id,
       o.start_time,
       CASE WHEN list_contains(e.path, e.next) THEN 'cycle' ELSE 'pending' END AS status,
       CASE WHEN NOT list_contains(e.path, e.next) THEN e.next END AS waiting_for,
       len(e.path) AS chain_length
FROM waiting o
JOIN ends e ON e.start = o.turn_id
