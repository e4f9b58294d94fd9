-- derive_span_threads: one row per stored span: the thread and turn it belongs to
-- (CONTRACT.md section 2), resolved over the stored span tree.
--
-- Scoped: this view derives the rows of span_threads_mat. It runs over the whole store when
-- that table is built anew, and over a scoped subset on every refresh
-- (otel_threads.store.derive): TEMP tables named like its inputs then hold only the
-- traces in scope (with the traces their links to previous turns reach), so each row
-- must follow from those rows alone.
--
-- thread_id: the span's own id (first present key of the priority list, derived at
--   write time), else its nearest ancestor's in the same trace, else -- when no span
--   of its trace carries otel_threads marks -- the trace's: the first id, in priority
--   order, on any of its spans.
-- is_turn: otel_threads.is_turn / wandb.is_turn when present; else the span is in a
--   thread and its parent is absent or in another thread (or none) -- unless the span
--   carries the otel_threads.turn_id of another span: then it belongs to that turn,
--   whose span has not arrived (yet: children end, and are exported, first).
-- turn_id: its own span id for a turn, else its ancestors' turn in the same thread,
--   else its own otel_threads.turn_id (a turn whose span is not stored).
-- Linked turns: a turn without a thread id that names a previous turn
--   (otel_threads.previous_turn_id) takes the thread of that turn, along the chain of
--   links, across traces; its spans with it (thread_from_link). Until the chain reaches
--   a turn with a thread (a turn not arrived yet, or a cycle of links in bad data) its
--   spans have no thread: the view unresolved_turns lists them.
-- rejected: the span belongs to a turn refused by `collect --on-fork reject` (the turn
--   itself, a span carrying its turn id, or a descendant of its span): no thread.
WITH RECURSIVE
refused AS (
    SELECT DISTINCT turn_id FROM rejected_turns
),
marked AS (
    SELECT s.*,
           coalesce(s.span_id IN (SELECT turn_id FROM refused)
                    OR s.turn_id IN (SELECT turn_id FROM refused)
                    OR s.parent_span_id IN (SELECT turn_id FROM refused), false) AS refused
    FROM spans_raw s
),
trace_marks AS (
    SELECT trace_id,
           bool_or(turn_id IS NOT NULL OR previous_turn_id IS NOT NULL) AS marked,
           bool_or(thread_id IS NULL) AS unthreaded
    FROM spans_raw
    GROUP BY trace_id
),
trace_thread AS (
    SELECT s.trace_id,
           -- the rank of the key the span's thread id came from: the first of these
           -- (otel_threads.otlp.values.THREAD_ID_KEYS, in order) holding a non-empty string
           arg_min(s.thread_id, [
               coalesce(list_position(list_transform(
                   ['gen_ai.conversation.id', 'session.id', 'langfuse.session.id',
                    'traceloop.association.properties.session_id',
                    'langsmith.metadata.thread_id', 'langsmith.metadata.session_id',
                    'langsmith.metadata.conversation_id', 'ai.telemetry.metadata.sessionId',
                    'ai.settings.context.sessionId', 'ai.settings.context.conversationId',
                    'ai.settings.context.threadId', 'gcp.vertex.agent.session_id',
                    'mlflow.trace.session', 'wandb.thread_id'],
                   lambda key: coalesce(json_type(s.attributes, '$."' || key || '"') = 'VARCHAR'
                                        AND s.attributes->>('$."' || key || '"') <> '', false)),
                   true), 99),
               s.start_time_unix_nano]) AS thread_id
    FROM spans_raw s
    JOIN trace_marks m ON m.trace_id = s.trace_id AND NOT m.marked AND m.unthreaded
    WHERE s.thread_id IS NOT NULL
    GROUP BY s.trace_id
),
roots AS (
    SELECT s.*
    FROM marked s
    WHERE s.parent_span_id IS NULL
       OR NOT EXISTS (SELECT 1 FROM spans_raw p
                      WHERE p.trace_id = s.trace_id AND p.span_id = s.parent_span_id)
),
walk AS (
    SELECT r.trace_id, r.span_id, r.parent_span_id, 0 AS depth, r.refused,
           x.thread_id, x.is_turn,
           CASE WHEN x.is_turn THEN r.span_id ELSE r.turn_id END AS turn_id
    FROM roots r
    LEFT JOIN trace_thread tt ON tt.trace_id = r.trace_id
    CROSS JOIN LATERAL (
        SELECT coalesce(r.thread_id, tt.thread_id) AS thread_id,
               coalesce(r.is_turn,
                        coalesce(r.thread_id, tt.thread_id) IS NOT NULL
                        AND coalesce(r.turn_id, r.span_id) = r.span_id) AS is_turn
    ) x
    UNION ALL
    SELECT c.trace_id, c.span_id, c.parent_span_id, w.depth + 1, w.refused OR c.refused,
           x.thread_id,
           x.is_turn,
           CASE WHEN x.is_turn THEN c.span_id
                WHEN x.thread_id IS NOT DISTINCT FROM w.thread_id
                    THEN coalesce(w.turn_id, c.turn_id)
                ELSE c.turn_id END
    FROM walk w
    JOIN marked c ON c.trace_id = w.trace_id AND c.parent_span_id = w.span_id
    LEFT JOIN trace_thread tt ON tt.trace_id = c.trace_id
    CROSS JOIN LATERAL (
        SELECT coalesce(c.thread_id, w.thread_id, tt.thread_id) AS thread_id,
               coalesce(c.is_turn,
                        coalesce(c.thread_id, w.thread_id, tt.thread_id) IS NOT NULL
                        AND coalesce(c.thread_id, w.thread_id, tt.thread_id)
                            IS DISTINCT FROM w.thread_id
                        AND coalesce(c.turn_id, c.span_id) = c.span_id) AS is_turn
    ) x
    WHERE w.depth < 10000
),
local AS (
    SELECT s.trace_id, s.span_id, s.parent_span_id, s.previous_turn_id,
           coalesce(w.refused, s.refused) AS refused,
           coalesce(w.thread_id, s.thread_id) AS thread_id,
           coalesce(w.turn_id, s.turn_id) AS turn_id,
           coalesce(w.is_turn, s.is_turn, false) AS is_turn,
           w.depth,
           w.span_id IS NULL AS in_cycle
    FROM marked s
    LEFT JOIN walk w ON w.trace_id = s.trace_id AND w.span_id = s.span_id
),
turn_thread AS (
    SELECT turn_id, min(thread_id) AS thread_id
    FROM local
    WHERE turn_id IS NOT NULL AND thread_id IS NOT NULL AND NOT refused
    GROUP BY turn_id
),
-- one row per turn span without a thread that names a previous turn
links AS (
    SELECT span_id AS turn_id, min(previous_turn_id) AS previous_turn_id
    FROM local
    WHERE thread_id IS NULL AND is_turn AND previous_turn_id IS NOT NULL AND NOT refused
    GROUP BY span_id
),
-- from each turn with a thread down the links that name it: each link is followed once
-- (a turn names one previous turn), so cycles, which never reach a thread, end nothing
chain AS (
    SELECT l.turn_id, t.thread_id, 1 AS hops
    FROM links l
    JOIN turn_thread t ON t.turn_id = l.previous_turn_id
    UNION ALL
    SELECT l.turn_id, c.thread_id, c.hops + 1
    FROM chain c
    JOIN links l ON l.previous_turn_id = c.turn_id
    WHERE c.hops < 100000
)
SELECT l.trace_id, l.span_id, l.parent_span_id,
       CASE WHEN NOT l.refused THEN coalesce(l.thread_id, c.thread_id) END AS thread_id,
       CASE WHEN NOT l.refused THEN l.turn_id END AS turn_id,
       l.is_turn AND NOT l.refused AS is_turn,
       l.depth,
       l.in_cycle,
       c.thread_id IS NOT NULL AS thread_from_link,
       l.refused
FROM local l
LEFT JOIN chain c ON l.thread_id IS NULL AND c.turn_id = l.turn_id
