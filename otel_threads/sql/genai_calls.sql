-- genai_calls: one row per LLM span (genai_llm_spans) that belongs to an LLM call: the
-- call it belongs to (call_span_id) and how far out it sits (depth: 0 for the call span
-- itself).
--
-- LLM spans that nest (a framework span around a client span, an SDK's own span inside an
-- instrumentation's, Vercel's ai.generateText around its doGenerate) are one call: the
-- innermost LLM span is the call, and each LLM ancestor whose only LLM child (nearest LLM
-- descendant, through any non-LLM spans between) leads to it is part of it. An LLM span
-- with two or more LLM children (a multi-step ai.generateText) is no call of its own and
-- has no row: its children are the calls.
WITH RECURSIVE
llm AS (
    SELECT trace_id, span_id, parent_span_id FROM genai_llm_spans
),
nodes AS (
    SELECT s.trace_id, s.span_id, s.parent_span_id, g.span_id IS NOT NULL AS is_llm
    FROM spans_raw s
    LEFT JOIN llm g ON g.trace_id = s.trace_id AND g.span_id = s.span_id
),
-- from each LLM span up through its ancestors, stopping at the first LLM one
up AS (
    SELECT g.trace_id, g.span_id AS origin, n.span_id AS ancestor, n.parent_span_id AS next,
           n.is_llm, 1 AS steps
    FROM llm g
    JOIN nodes n ON n.trace_id = g.trace_id AND n.span_id = g.parent_span_id
    UNION ALL
    SELECT u.trace_id, u.origin, n.span_id, n.parent_span_id, n.is_llm, u.steps + 1
    FROM up u
    JOIN nodes n ON n.trace_id = u.trace_id AND n.span_id = u.next
    WHERE NOT u.is_llm AND u.steps < 1000
),
llm_parent AS (
    SELECT trace_id, origin AS span_id, ancestor AS parent_llm_span_id
    FROM up
    WHERE is_llm
),
llm_children AS (
    SELECT trace_id, parent_llm_span_id AS span_id, count(*) AS n
    FROM llm_parent
    GROUP BY ALL
),
-- from each innermost LLM span (the call) out through ancestors with a single LLM child
chain AS (
    SELECT g.trace_id, g.span_id AS call_span_id, g.span_id, 0 AS depth
    FROM llm g
    LEFT JOIN llm_children k ON k.trace_id = g.trace_id AND k.span_id = g.span_id
    WHERE k.n IS NULL
    UNION ALL
    SELECT c.trace_id, c.call_span_id, p.parent_llm_span_id, c.depth + 1
    FROM chain c
    JOIN llm_parent p ON p.trace_id = c.trace_id AND p.span_id = c.span_id
    JOIN llm_children k ON k.trace_id = p.trace_id AND k.span_id = p.parent_llm_span_id
    WHERE k.n = 1 AND c.depth < 1000
)
SELECT trace_id, span_id, call_span_id, depth
FROM chain
