-- genai_aliases: one row: the vocabularies the GenAI views normalise to
-- (GENAI_CONVENTIONS.md sections 1.1, 1.2 and 8), as maps from a lower-cased alias
-- (finish reasons also with '-' read as '_') to the canonical value.
--
-- roles: developer -> system; function -> tool; model (Gemini), ai / AIMessage (LangChain),
--   chatbot -> assistant; human / HumanMessage -> user. Other roles pass through lower-cased.
-- finish_reasons: the semconv enum stop|length|content_filter|tool_call|error from OpenAI
--   (tool_calls, function_call), Anthropic (end_turn, stop_sequence, max_tokens, tool_use,
--   refusal), Gemini (STOP, MAX_TOKENS, SAFETY, ...) and the Vercel AI SDK (tool-calls,
--   content-filter). Other values pass through lower-cased.
-- providers: the gen_ai.system values that gen_ai.provider.name renamed in semconv 1.37.
SELECT
    MAP {
        'developer': 'system', 'system': 'system', 'systemmessage': 'system',
        'user': 'user', 'human': 'user', 'humanmessage': 'user', 'humanmessagechunk': 'user',
        'assistant': 'assistant', 'ai': 'assistant', 'aimessage': 'assistant',
        'aimessagechunk': 'assistant', 'model': 'assistant', 'chatbot': 'assistant',
        'tool': 'tool', 'toolmessage': 'tool', 'function': 'tool', 'functionmessage': 'tool',
        'ipython': 'tool'
    } AS roles,
    MAP {
        'stop': 'stop', 'end_turn': 'stop', 'stop_sequence': 'stop', 'finish_reason_stop': 'stop',
        'length': 'length', 'max_tokens': 'length', 'max_output_tokens': 'length',
        'model_length': 'length',
        'tool_call': 'tool_call', 'tool_calls': 'tool_call', 'function_call': 'tool_call',
        'tool_use': 'tool_call',
        'content_filter': 'content_filter', 'safety': 'content_filter',
        'recitation': 'content_filter', 'blocklist': 'content_filter',
        'prohibited_content': 'content_filter', 'spii': 'content_filter',
        'refusal': 'content_filter',
        'error': 'error', 'malformed_function_call': 'error'
    } AS finish_reasons,
    MAP {
        'az.ai.openai': 'azure.ai.openai', 'az.ai.inference': 'azure.ai.inference',
        'vertex_ai': 'gcp.vertex_ai', 'gemini': 'gcp.gemini'
    } AS providers
