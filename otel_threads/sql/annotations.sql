-- annotations: one row per annotation of a thread, a turn or a span: a name with a
-- label, a score and/or an explanation, from people (the API, the command line, the
-- web page: source 'api'), evaluators (`otel-threads eval`: source = the evaluator's
-- name) or the app itself over OTLP (the GenAI evaluation event: source 'otlp',
-- derive_annotations). turn_id is NULL for an annotation of the whole thread.
SELECT annotation_id, thread_id, turn_id, trace_id, span_id, name, label, score, explanation,
       source, author, created_at
FROM annotation_records
UNION ALL
SELECT annotation_id, thread_id, turn_id, trace_id, span_id, name, label, score, explanation,
       source, author, created_at
FROM annotations_mat
