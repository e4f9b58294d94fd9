-- forks: one row per fork of a conversation: a turn that two or more turns answer
-- (they name it as previous_turn_id, as "regenerate" and "edit message" do; or one
-- names it while another simply followed it). The competing turns are listed in the
-- order they started; current_child_turn_id is the one on the thread's current branch
-- (NULL when the current branch does not pass this fork).
SELECT thread_id,
       parent_turn_id,
       count(*) AS child_count,
       list(turn_id ORDER BY start_time, turn_id) AS child_turn_ids,
       list(start_time ORDER BY start_time, turn_id) AS child_start_times,
       any_value(turn_id) FILTER (WHERE on_current_branch) AS current_child_turn_id,
       list(start_time ORDER BY start_time, turn_id)[2] AS forked_at
FROM turns
GROUP BY thread_id, parent_turn_id
-- not "WHERE parent_turn_id IS NOT NULL": a filter on the thread alone reaches the
-- table as an index lookup; count(parent_turn_id) leaves out the turns without one
HAVING count(parent_turn_id) > 1
