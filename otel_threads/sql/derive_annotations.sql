-- derive_annotations: one row per evaluation result that arrived over OTLP about a span
-- of a thread: the GenAI conventions' event gen_ai.evaluation.result, with
-- gen_ai.evaluation.name, gen_ai.evaluation.score.value, gen_ai.evaluation.score.label
-- and gen_ai.evaluation.explanation, as
--   - a span event: about the span that carries it;
--   - a log record (event name, or the legacy `event.name` attribute): about the span
--     it is parented to (its trace and span ids); its attributes, else its body's keys;
--   - a log record that names no span, only gen_ai.response.id (kept apart when it
--     arrives: response_evaluations): about the LLM call with that response id.
-- So each is an annotation of that span's turn and thread (source 'otlp'; author: the
-- service that sent it). A redelivered record or span is stored once, so its
-- annotation is one row. annotation_id: a log record's record_id; for a span event, a
-- hash of the span and the event's position on it. An event with no name is named
-- 'unnamed' (the conventions require one; nothing is dropped for lacking it).
--
-- Scoped: this view derives the rows of annotations_mat. It runs over the whole store
-- when that table is built anew, and over the traces a refresh derives
-- (otel_threads.store.derive), so each row must follow from its own trace alone (and
-- the evaluations by response id, a table of their own).
WITH spans AS (
    SELECT t.thread_id, t.turn_id, s.trace_id, s.span_id, s.service_name,
           unnest(list_transform(json_extract(s.events, '$[*]'),
                                 lambda e, i: {'i': i, 'e': e})) AS ev
    FROM span_threads t
    JOIN spans_raw s ON s.trace_id = t.trace_id AND s.span_id = t.span_id
    WHERE t.thread_id IS NOT NULL AND contains(s.events::VARCHAR, 'gen_ai.evaluation.result')
),
events AS (
    SELECT thread_id, turn_id, trace_id, span_id, service_name,
           md5(trace_id || ':' || span_id || ':' || ev.i::VARCHAR) AS annotation_id,
           ev.e -> 'attributes' AS a,
           make_timestamp(TRY_CAST(ev.e ->> 'time_unix_nano' AS BIGINT) // 1000) AS created_at
    FROM spans
    WHERE ev.e ->> 'name' = 'gen_ai.evaluation.result'
),
records AS (
    SELECT t.thread_id, t.turn_id, l.trace_id, l.span_id, l.service_name,
           l.record_id AS annotation_id,
           CASE WHEN json_type(l.body) = 'OBJECT' AND l.attributes ->> 'gen_ai.evaluation.name'
                     IS NULL THEN l.body ELSE l.attributes END AS a,
           coalesce(l.time, make_timestamp(l.observed_time_unix_nano // 1000),
                    l.received_at) AS created_at
    FROM logs l
    JOIN span_threads t ON t.trace_id = l.trace_id AND t.span_id = l.span_id
    WHERE l.event_name = 'gen_ai.evaluation.result' AND t.thread_id IS NOT NULL
),
by_response AS (
    SELECT c.thread_id, c.turn_id, c.trace_id, c.span_id, r.record_id AS annotation_id,
           r.name, r.label, r.score, r.explanation, r.author, r.created_at
    FROM response_evaluations r
    JOIN llm_calls c ON c.response_id = r.response_id
    WHERE c.thread_id IS NOT NULL
)
SELECT annotation_id, thread_id, turn_id, trace_id, span_id,
       coalesce(a ->> 'gen_ai.evaluation.name', 'unnamed') AS name,
       a ->> 'gen_ai.evaluation.score.label' AS label,
       TRY_CAST(a ->> 'gen_ai.evaluation.score.value' AS DOUBLE) AS score,
       a ->> 'gen_ai.evaluation.explanation' AS explanation,
       'otlp' AS source, service_name AS author, created_at
FROM (SELECT * FROM events UNION ALL BY NAME SELECT * FROM records)
UNION ALL
SELECT annotation_id, thread_id, turn_id, trace_id, span_id, coalesce(name, 'unnamed'), label,
       score, explanation, 'otlp', author, created_at
FROM by_response
