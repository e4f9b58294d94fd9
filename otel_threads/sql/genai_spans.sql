-- genai_spans: one row per LLM span (genai_llm_spans) with the thread and turn it belongs
-- to (span_threads). thread_id is carried through the GenAI views from here and leads
-- their partitions and groupings, so a query for one thread filters here, before any
-- message is parsed.
SELECT t.thread_id, t.turn_id, g.*
FROM genai_llm_spans g
LEFT JOIN span_threads t ON t.trace_id = g.trace_id AND t.span_id = g.span_id
