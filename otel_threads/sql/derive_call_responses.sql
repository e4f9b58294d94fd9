-- derive_call_responses: one row per LLM call of a thread that names its response id
-- (llm_calls.response_id, e.g. OpenAI's chatcmpl-...): what an evaluation result that
-- names only gen_ai.response.id is matched by when it arrives after the call was derived
-- (otel_threads.store.insert queues the call's trace again; derive_annotations).
--
-- Scoped: this view derives the rows of call_responses_mat. It runs over the whole store
-- when that table is built anew, and over the traces a refresh derives
-- (otel_threads.store.derive), so each row must follow from its own trace alone.
SELECT trace_id, span_id, thread_id, response_id
FROM llm_calls
WHERE thread_id IS NOT NULL AND response_id IS NOT NULL
