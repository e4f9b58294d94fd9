-- derive_threads: one row per thread (CONTRACT.md section 2). Statistics always cover the
-- whole thread. last_updated is the latest end of any turn, or its start while it
-- still runs, so threads whose turns all still run are listed too. user_id is the first
-- turn's that names one; models are those of its turns' LLM calls; cost_usd the sum of its
-- turns' known costs (NULL when none is known), unpriced_call_count its calls of none;
-- annotation_count its annotations (annotations: kept as they change, otel_threads.annotations).
-- ended: the thread's last turn carries an end mark (turns.ended_at: the app said the thread
-- ended, ThreadContext.end), ended_at that mark's time; reopened_at: when a turn carried an
-- end mark and later turns came, the start of the first turn after the latest such turn
-- (so a thread that got a new turn after it ended is not ended, and says so).
--
-- Scoped: this view derives the rows of threads_mat. It runs over the whole store when
-- that table is built anew, and over a scoped subset on every refresh
-- (otel_threads.store.derive): TEMP tables named like its inputs then hold only the
-- threads in scope, so each row must follow from the rows of its own thread alone (of
-- transcript, the refresh holds only the rows io reads: each thread's first user
-- message and last assistant message; of span_threads, the spans of its traces and
-- the thread's spans in no turn: a turn counts its own).
WITH t AS (
    SELECT thread_id,
           count(*) AS turn_count,
           min(start_time) AS start_time,
           max(coalesce(end_time, start_time)) AS last_updated,
           arg_min(turn_id, [epoch_us(start_time), turn_index]) AS first_turn_id,
           arg_max(turn_id, [epoch_us(start_time), turn_index]) AS last_turn_id,
           quantile_cont(duration_ms, 0.5) AS p50_turn_duration_ms,
           quantile_cont(duration_ms, 0.99) AS p99_turn_duration_ms,
           -- summed exactly (a sum of doubles depends on the order of the rows)
           sum(duration_ms::DECIMAL(38, 6))::DOUBLE AS total_turn_duration_ms,
           sum(span_count) AS turn_span_count,
           sum(llm_call_count) AS llm_call_count,
           count(*) FILTER (WHERE has_error) AS error_turn_count,
           count(*) FILTER (WHERE is_running) AS running_turn_count,
           sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens,
           arg_min(project, start_time) AS project,
           arg_min(service_name, start_time) AS service_name,
           arg_min(user_id, [epoch_us(start_time), turn_index]) FILTER (WHERE user_id IS NOT NULL) AS user_id,
           list_sort(list_distinct(flatten(list(models)))) AS models,
           -- (summed exactly: a sum of doubles depends on the order of the rows)
           sum(cost_usd::DECIMAL(38, 12))::DOUBLE AS cost_usd,
           sum(unpriced_call_count)::BIGINT AS unpriced_call_count,
           -- the last turn, and the last turn that carries an end mark (turn order)
           max([epoch_us(start_time), turn_index]) AS last_key,
           max([epoch_us(start_time), turn_index]) FILTER (WHERE ended_at IS NOT NULL)
               AS end_key,
           arg_max(ended_at, [epoch_us(start_time), turn_index])
               FILTER (WHERE ended_at IS NOT NULL) AS end_mark_at
    FROM turns
    GROUP BY thread_id
),
-- threads that got turns after their latest end mark: the first of those turns' start
reopened AS (
    SELECT u.thread_id, min(u.start_time) AS reopened_at
    FROM turns u
    JOIN t ON t.thread_id = u.thread_id AND t.end_key < t.last_key
        AND [epoch_us(u.start_time), u.turn_index] > t.end_key
    GROUP BY u.thread_id
),
-- the thread's spans: its turns' (turns.span_count) and those in no turn
spans_per_thread AS (
    SELECT thread_id, count(*) AS span_count
    FROM span_threads
    WHERE thread_id IS NOT NULL AND turn_id IS NULL
    GROUP BY thread_id
),
io AS (
    SELECT thread_id,
           arg_min(content, seq) FILTER (WHERE role = 'user' AND content IS NOT NULL)
               AS first_input,
           arg_max(content, seq) FILTER (WHERE role = 'assistant' AND content IS NOT NULL)
               AS last_output
    FROM transcript
    GROUP BY thread_id
),
fork_counts AS (
    SELECT thread_id, count(*) AS fork_count
    FROM (SELECT thread_id, parent_turn_id
          FROM turns
          WHERE parent_turn_id IS NOT NULL
          GROUP BY thread_id, parent_turn_id
          HAVING count(*) > 1)
    GROUP BY thread_id
),
cycles AS (
    SELECT thread_id, count(*) AS cycle_turn_count
    FROM turns
    WHERE link_status = 'cycle'
    GROUP BY thread_id
),
notes AS (
    SELECT thread_id, count(*) AS annotation_count
    FROM annotations
    GROUP BY thread_id
)
SELECT t.thread_id,
       t.project,
       t.turn_count,
       t.start_time,
       t.last_updated,
       t.first_turn_id,
       t.last_turn_id,
       t.p50_turn_duration_ms,
       t.p99_turn_duration_ms,
       (t.turn_span_count + coalesce(sp.span_count, 0))::BIGINT AS span_count,
       t.llm_call_count,
       t.error_turn_count,
       t.input_tokens,
       t.output_tokens,
       io.first_input,
       io.last_output,
       coalesce(f.fork_count, 0) AS fork_count,
       t.running_turn_count,
       (epoch_us(t.last_updated) - epoch_us(t.start_time)) / 1000.0 AS duration_ms,
       t.total_turn_duration_ms,
       t.user_id,
       t.models,
       t.service_name,
       coalesce(cy.cycle_turn_count, 0) AS cycle_turn_count,
       t.cost_usd,
       t.unpriced_call_count,
       coalesce(n.annotation_count, 0) AS annotation_count,
       coalesce(t.end_key = t.last_key, false) AS ended,
       CASE WHEN t.end_key = t.last_key THEN t.end_mark_at END AS ended_at,
       ro.reopened_at
FROM t
LEFT JOIN spans_per_thread sp USING (thread_id)
LEFT JOIN io USING (thread_id)
LEFT JOIN fork_counts f USING (thread_id)
LEFT JOIN cycles cy USING (thread_id)
LEFT JOIN notes n USING (thread_id)
LEFT JOIN reopened ro USING (thread_id)
