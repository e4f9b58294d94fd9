-- genai_span_meta: one row per LLM span (genai_llm_spans): the call metadata its convention
-- keeps on the span itself (or in the response payload it carries).
--
-- operation: gen_ai.operation.name (the old completion / generate read as text_completion /
--   generate_content), llm.request.type, else by convention (MLflow LLM: generate_content,
--   Google ADK: generate_content, otherwise chat).
-- provider: gen_ai.provider.name; ai.model.provider / gen_ai.system of a Vercel span without
--   its '.chat' suffix; gen_ai.system with the pre-1.37 values renamed (genai_aliases);
--   llm.provider, llm.system; mlflow.llm.provider, else (MLflow 3) mlflow.message.format;
--   llm.vendor; lower-cased.
-- request_model, response_model, response_id, token counts: the first present of the
--   conventions' keys (gen_ai.usage.*, llm.usage.*, llm.token_count.*, ai.usage.*,
--   mlflow.chat.tokenUsage, the response payload's usage / usage_metadata, Langfuse's
--   usage_details); total_tokens defaults to input + output.
-- producer_cost_usd: a cost the producer put on the span (gen_ai.usage.cost, OpenLIT;
--   llm.cost.total, OpenInference; Langfuse's cost_details total), in USD.
-- finish_reasons: gen_ai.response.finish_reasons, else the single finish reason the span
--   names (llm.finish_reason, ai.response.finishReason, the first completion's or the
--   response payload's), normalised (genai_aliases).
-- The attributes are read in one parse (json_transform): a key read as VARCHAR gives a
-- string's text and a structured value's JSON, so try(json(...)) reads JSON held in a
-- string and a structured AnyValue alike.
WITH keyed AS (
    SELECT g.trace_id, g.span_id, g.family,
           json_transform(g.attributes, '{
               "gen_ai.operation.name": "VARCHAR", "llm.request.type": "VARCHAR",
               "mlflow.spanType": "VARCHAR", "llm.input_messages.0.message.role": "VARCHAR",
               "llm.prompts": "VARCHAR",
               "gen_ai.provider.name": "VARCHAR", "gen_ai.system": "VARCHAR",
               "ai.model.provider": "VARCHAR", "llm.provider": "VARCHAR",
               "llm.system": "VARCHAR", "mlflow.llm.provider": "VARCHAR",
               "mlflow.message.format": "VARCHAR", "llm.vendor": "VARCHAR",
               "gen_ai.request.model": "VARCHAR", "llm.request.model": "VARCHAR",
               "llm.invocation_parameters": "VARCHAR", "ai.model.id": "VARCHAR",
               "mlflow.llm.model": "VARCHAR", "langfuse.observation.model.name": "VARCHAR",
               "llm.model_name": "VARCHAR", "gen_ai.response.model": "VARCHAR",
               "llm.response.model": "VARCHAR", "ai.response.model": "VARCHAR",
               "gen_ai.response.id": "VARCHAR", "ai.response.id": "VARCHAR",
               "gen_ai.usage.input_tokens": "BIGINT", "gen_ai.usage.prompt_tokens": "BIGINT",
               "llm.usage.prompt_tokens": "BIGINT", "llm.token_count.prompt": "BIGINT",
               "ai.usage.inputTokens": "BIGINT", "ai.usage.promptTokens": "BIGINT",
               "gen_ai.usage.output_tokens": "BIGINT", "gen_ai.usage.completion_tokens": "BIGINT",
               "llm.usage.completion_tokens": "BIGINT", "llm.token_count.completion": "BIGINT",
               "ai.usage.outputTokens": "BIGINT", "ai.usage.completionTokens": "BIGINT",
               "gen_ai.usage.total_tokens": "BIGINT", "llm.usage.total_tokens": "BIGINT",
               "llm.token_count.total": "BIGINT", "ai.usage.totalTokens": "BIGINT",
               "gen_ai.usage.cache_read.input_tokens": "BIGINT",
               "gen_ai.usage.cache_read_input_tokens": "BIGINT",
               "llm.token_count.prompt_details.cache_read": "BIGINT",
               "ai.usage.cachedInputTokens": "BIGINT",
               "gen_ai.usage.cache_write.input_tokens": "BIGINT",
               "gen_ai.usage.cache_creation.input_tokens": "BIGINT",
               "gen_ai.usage.cache_creation_input_tokens": "BIGINT",
               "llm.token_count.prompt_details.cache_write": "BIGINT",
               "gen_ai.usage.reasoning.output_tokens": "BIGINT",
               "gen_ai.usage.reasoning_tokens": "BIGINT", "llm.usage.reasoning_tokens": "BIGINT",
               "llm.token_count.completion_details.reasoning": "BIGINT",
               "ai.usage.reasoningTokens": "BIGINT",
               "mlflow.chat.tokenUsage": "VARCHAR", "langfuse.observation.usage_details": "VARCHAR",
               "gen_ai.response.finish_reasons": "VARCHAR", "llm.finish_reason": "VARCHAR",
               "ai.response.finishReason": "VARCHAR", "ai.finishReason": "VARCHAR",
               "gen_ai.completion.0.finish_reason": "VARCHAR",
               "llm.completions.0.finish_reason": "VARCHAR",
               "request_data": "VARCHAR", "response_data": "VARCHAR",
               "gcp.vertex.agent.llm_request": "VARCHAR",
               "gcp.vertex.agent.llm_response": "VARCHAR",
               "output.value": "VARCHAR", "mlflow.spanOutputs": "VARCHAR",
               "mlflow.spanInputs": "VARCHAR",
               "gen_ai.completion": "VARCHAR", "gen_ai.usage.cost": "DOUBLE",
               "llm.cost.total": "DOUBLE",
               "langfuse.observation.cost_details": "VARCHAR"}') AS k
    FROM genai_llm_spans g
),
payloads AS (
    SELECT *,
           CASE family
               WHEN 'logfire-v1' THEN try(json(k."request_data"))
               WHEN 'google-adk' THEN try(json(k."gcp.vertex.agent.llm_request"))
               WHEN 'mlflow' THEN try(json(k."mlflow.spanInputs"))
           END AS request,
           CASE family
               WHEN 'openinference' THEN try(json(k."output.value"))
               WHEN 'mlflow' THEN try(json(k."mlflow.spanOutputs"))
               WHEN 'langsmith' THEN try(json(k."gen_ai.completion"))
               WHEN 'logfire-v1' THEN try(json(k."response_data"))
               WHEN 'google-adk' THEN try(json(k."gcp.vertex.agent.llm_response"))
           END AS response,
           try(json(k."mlflow.chat.tokenUsage")) AS mlflow_usage,
           try(json(k."langfuse.observation.usage_details")) AS langfuse_usage
    FROM keyed
),
meta AS (
    SELECT trace_id, span_id,
           coalesce(
               CASE lower(k."gen_ai.operation.name")
                   WHEN 'completion' THEN 'text_completion'
                   WHEN 'generate' THEN 'generate_content'
                   ELSE lower(k."gen_ai.operation.name") END,
               CASE k."llm.request.type" WHEN 'completion' THEN 'text_completion'
                                         WHEN 'chat' THEN 'chat' END,
               CASE k."mlflow.spanType" WHEN '"LLM"' THEN 'generate_content' END,
               CASE WHEN family = 'openinference'
                         AND k."llm.input_messages.0.message.role" IS NULL
                         AND k."llm.prompts" IS NOT NULL THEN 'text_completion' END,
               CASE WHEN family = 'google-adk' THEN 'generate_content' END,
               'chat') AS operation,
           lower(coalesce(
               k."gen_ai.provider.name",
               CASE WHEN family = 'vercel-ai-legacy'
                    THEN nullif(split_part(coalesce(k."ai.model.provider", k."gen_ai.system"),
                                           '.', 1), '') END,
               coalesce(x.providers[lower(k."gen_ai.system")], k."gen_ai.system"),
               k."llm.provider", k."llm.system",
               try(json(k."mlflow.llm.provider"))->>'$',
               -- MLflow 3 names the provider only as its message format ("openai")
               CASE WHEN family = 'mlflow'
                    THEN coalesce(try(json(k."mlflow.message.format"))->>'$',
                                  k."mlflow.message.format") END,
               k."llm.vendor")) AS provider,
           coalesce(k."gen_ai.request.model", k."llm.request.model",
                    try(json(k."llm.invocation_parameters"))->>'model', k."ai.model.id",
                    -- the request payload's model before MLflow's mlflow.llm.model, which
                    -- MLflow 3 fills from the response (the dated model)
                    request->>'model', try(json(k."mlflow.llm.model"))->>'$',
                    k."langfuse.observation.model.name", k."llm.model_name") AS request_model,
           coalesce(k."gen_ai.response.model", k."llm.response.model", k."llm.model_name",
                    k."ai.response.model", response->>'model', response->>'model_version',
                    response->>'modelVersion') AS response_model,
           coalesce(k."gen_ai.response.id", k."ai.response.id", response->>'id',
                    response->>'response_id') AS response_id,
           coalesce(
               k."gen_ai.usage.input_tokens", k."gen_ai.usage.prompt_tokens",
               k."llm.usage.prompt_tokens", k."llm.token_count.prompt",
               k."ai.usage.inputTokens", k."ai.usage.promptTokens",
               try_cast(coalesce(
                   mlflow_usage->>'input_tokens', mlflow_usage->>'prompt_tokens',
                   response->'usage'->>'prompt_tokens', response->'usage'->>'input_tokens',
                   response->'usage_metadata'->>'prompt_token_count',
                   response->'usageMetadata'->>'promptTokenCount',
                   langfuse_usage->>'input') AS BIGINT)) AS input_tokens,
           coalesce(
               k."gen_ai.usage.output_tokens", k."gen_ai.usage.completion_tokens",
               k."llm.usage.completion_tokens", k."llm.token_count.completion",
               k."ai.usage.outputTokens", k."ai.usage.completionTokens",
               try_cast(coalesce(
                   mlflow_usage->>'output_tokens', mlflow_usage->>'completion_tokens',
                   response->'usage'->>'completion_tokens', response->'usage'->>'output_tokens',
                   response->'usage_metadata'->>'candidates_token_count',
                   response->'usageMetadata'->>'candidatesTokenCount',
                   langfuse_usage->>'output') AS BIGINT)) AS output_tokens,
           coalesce(
               k."gen_ai.usage.total_tokens", k."llm.usage.total_tokens",
               k."llm.token_count.total", k."ai.usage.totalTokens",
               try_cast(coalesce(
                   mlflow_usage->>'total_tokens', response->'usage'->>'total_tokens',
                   response->'usage_metadata'->>'total_token_count',
                   response->'usageMetadata'->>'totalTokenCount',
                   langfuse_usage->>'total') AS BIGINT)) AS total_tokens,
           coalesce(
               k."gen_ai.usage.cache_read.input_tokens", k."gen_ai.usage.cache_read_input_tokens",
               k."llm.token_count.prompt_details.cache_read", k."ai.usage.cachedInputTokens",
               try_cast(coalesce(
                   response->'usage_metadata'->>'cached_content_token_count',
                   response->'usage'->'prompt_tokens_details'->>'cached_tokens') AS BIGINT))
               AS cache_read_input_tokens,
           coalesce(
               k."gen_ai.usage.cache_write.input_tokens",
               k."gen_ai.usage.cache_creation.input_tokens",
               k."gen_ai.usage.cache_creation_input_tokens",
               k."llm.token_count.prompt_details.cache_write") AS cache_write_input_tokens,
           coalesce(
               k."gen_ai.usage.reasoning.output_tokens", k."gen_ai.usage.reasoning_tokens",
               k."llm.usage.reasoning_tokens", k."llm.token_count.completion_details.reasoning",
               k."ai.usage.reasoningTokens",
               try_cast(coalesce(
                   response->'usage_metadata'->>'thoughts_token_count',
                   response->'usage'->'completion_tokens_details'->>'reasoning_tokens')
                   AS BIGINT)) AS reasoning_output_tokens,
           CASE
               WHEN json_type(try(json(k."gen_ai.response.finish_reasons"))) = 'ARRAY'
                   THEN json_extract_string(json(k."gen_ai.response.finish_reasons"), '$[*]')
               WHEN k."gen_ai.response.finish_reasons" IS NOT NULL
                   THEN [k."gen_ai.response.finish_reasons"]
               ELSE list_filter([coalesce(
                   k."llm.finish_reason", k."ai.response.finishReason", k."ai.finishReason",
                   k."gen_ai.completion.0.finish_reason", k."llm.completions.0.finish_reason",
                   response->'choices'->0->>'finish_reason',
                   response->'generations'->0->0->'generation_info'->>'finish_reason',
                   response->'generations'->0->'generation_info'->>'finish_reason',
                   response->>'stop_reason', response->>'finish_reason',
                   response->>'finishReason')], lambda f: f IS NOT NULL)
           END AS finish_reasons_raw,
           coalesce(k."gen_ai.usage.cost", k."llm.cost.total",
                    TRY_CAST(try(json(k."langfuse.observation.cost_details"))->>'total' AS DOUBLE))
               AS producer_cost_usd
    FROM payloads
    CROSS JOIN genai_aliases x
)
SELECT trace_id, span_id, operation, provider, request_model, response_model, response_id,
       input_tokens, output_tokens,
       coalesce(total_tokens, input_tokens + output_tokens) AS total_tokens,
       cache_read_input_tokens, cache_write_input_tokens, reasoning_output_tokens,
       input_tokens IS NOT NULL OR output_tokens IS NOT NULL AS has_tokens,
       CASE WHEN len(finish_reasons_raw) > 0 THEN list_transform(
           finish_reasons_raw,
           lambda f: coalesce(x.finish_reasons[replace(lower(f), '-', '_')], lower(f)))
       END AS finish_reasons,
       producer_cost_usd
FROM meta
CROSS JOIN genai_aliases x
