"""Why LLM calls carry no messages, and what to set: `hint` for a kind of call,
`thread_hints` for the calls of a thread's turns.

Most instrumentations record the messages of an LLM call only when asked (the
OpenTelemetry GenAI instrumentations), or unless told not to (OpenLLMetry,
OpenInference, LangSmith). Which one made a call shows in the `llm_calls` view's
``convention`` (for a call without messages, the convention its span matched) and in
the span's instrumentation scope; GENAI_CONVENTIONS.md and docs/producers.md say what
each needs. The web page and ``otel-threads show`` say it where a thread's
transcript would be.
"""

from __future__ import annotations

import duckdb

from otel_threads.schemas import ContentHint, TurnSchema
from otel_threads.store.scope import traces_only

__all__ = ["SAMPLE_TURNS", "hint", "thread_hints"]

#: Turns whose LLM calls `thread_hints` looks at: enough to see each producer.
SAMPLE_TURNS = 5

_GENAI_OPT_IN = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_TRACELOOP = (
    "OpenLLMetry (Traceloop)",
    "TRACELOOP_TRACE_CONTENT=true",
    "OpenLLMetry records message content unless TRACELOOP_TRACE_CONTENT=false; "
    "unset it or set it to true.",
)
_OPENINFERENCE = (
    "OpenInference",
    "OPENINFERENCE_HIDE_INPUTS=false and OPENINFERENCE_HIDE_OUTPUTS=false",
    "OpenInference records inputs and outputs unless hidden: unset "
    "OPENINFERENCE_HIDE_INPUTS, OPENINFERENCE_HIDE_OUTPUTS, "
    "OPENINFERENCE_HIDE_INPUT_MESSAGES and OPENINFERENCE_HIDE_OUTPUT_MESSAGES "
    "(or a TraceConfig that sets them).",
)
#: By convention: (producer, setting, note).
_BY_CONVENTION: dict[str, tuple[str, str, str]] = {
    "semconv-1.37": (
        "an OpenTelemetry GenAI instrumentation (opentelemetry-util-genai)",
        f"{_GENAI_OPT_IN}=SPAN_ONLY",
        "The OpenTelemetry GenAI instrumentations (openai-v2 and the others on "
        "opentelemetry-util-genai) record no message content by default. Set "
        f"{_GENAI_OPT_IN}=SPAN_ONLY with OTEL_SEMCONV_STABILITY_OPT_IN="
        "gen_ai_latest_experimental (EVENT_ONLY sends it as log records: export logs "
        "too); instrumentations older than util-genai 1.0 take =true.",
    ),
    "semconv-1.28-events": (
        "an OpenTelemetry GenAI instrumentation (events as log records)",
        f"{_GENAI_OPT_IN}=true",
        "These OpenTelemetry GenAI instrumentations record no message content by "
        f"default. Set {_GENAI_OPT_IN}=true; the messages then arrive as log records "
        "(gen_ai.*.message, gen_ai.choice): export logs to this collector as well as "
        "traces.",
    ),
    "semconv-1.27-span-events": (
        "an instrumentation of the GenAI conventions before 1.28",
        f"{_GENAI_OPT_IN}=true",
        "This instrumentation records message content (span events "
        "gen_ai.content.prompt / .completion) only when asked: turn on its "
        f"content capture ({_GENAI_OPT_IN}=true for OpenTelemetry's).",
    ),
    "openllmetry-flat": _TRACELOOP,
    "openllmetry-json": _TRACELOOP,
    "openinference": _OPENINFERENCE,
    "openinference-io": _OPENINFERENCE,
    "langsmith": (
        "LangSmith",
        "LANGSMITH_HIDE_INPUTS=false and LANGSMITH_HIDE_OUTPUTS=false",
        "LangSmith records run inputs and outputs unless LANGSMITH_HIDE_INPUTS / "
        "LANGSMITH_HIDE_OUTPUTS are set: unset them.",
    ),
    "vercel-ai-legacy": (
        "the Vercel AI SDK",
        "experimental_telemetry: { recordInputs: true, recordOutputs: true }",
        "The AI SDK records prompts and responses unless recordInputs / recordOutputs "
        "are false in the call's telemetry settings.",
    ),
    "pydantic-ai-events": (
        "pydantic-ai",
        "InstrumentationSettings(include_content=True)",
        "pydantic-ai records message content unless its instrumentation settings say "
        "include_content=False.",
    ),
}
#: By instrumentation scope (a prefix), before the convention: the same conventions
#: come from libraries with settings of their own.
_BY_SCOPE: list[tuple[str, tuple[str, str, str]]] = [
    (
        "gcp.vertex.agent",
        (
            "Google ADK",
            f"{_GENAI_OPT_IN}=true",
            f"Google ADK 2.x records message content only with {_GENAI_OPT_IN}=true, "
            "and sends it as log records (gen_ai.client.inference.operation.details): "
            "export logs to this collector as well as traces.",
        ),
    ),
    ("pydantic-ai", _BY_CONVENTION["pydantic-ai-events"]),
    (
        "Microsoft.SemanticKernel",
        (
            "Semantic Kernel",
            "SEMANTICKERNEL_EXPERIMENTAL_GENAI_ENABLE_OTEL_DIAGNOSTICS_SENSITIVE=true",
            "Semantic Kernel records prompts and completions only with its sensitive "
            "diagnostics switch on.",
        ),
    ),
    ("openinference.", _OPENINFERENCE),
]
_ANY = (
    "this instrumentation",
    "its content-capture setting",
    "The LLM calls carry no message content: the instrumentation that made them "
    "records it only when asked (for the OpenTelemetry GenAI instrumentations, "
    f"{_GENAI_OPT_IN}=SPAN_ONLY), or the messages went as log records that did not "
    "reach this collector.",
)


def hint(convention: str | None, scope_name: str | None, llm_call_count: int = 1) -> ContentHint:
    """What to set so that calls of this convention and scope carry their messages."""
    found = next(
        (h for prefix, h in _BY_SCOPE if scope_name and scope_name.startswith(prefix)), None
    )
    producer, setting, note = found or _BY_CONVENTION.get(convention or "", _ANY)
    return ContentHint(convention, scope_name, llm_call_count, producer, setting, note)


def thread_hints(
    con: duckdb.DuckDBPyConnection, thread_id: str, turns: list[TurnSchema]
) -> list[ContentHint]:
    """One `ContentHint` per kind of LLM call (convention, scope) in the first
    `SAMPLE_TURNS` of ``turns`` that made any, most calls first. Reads those turns'
    traces only (`traces_only`); ``con`` must be a cursor of its own."""
    sample = [t for t in turns if t.llm_call_count][:SAMPLE_TURNS]
    if not sample:
        return []
    traces = sorted({t.trace_id for t in sample if t.trace_id})
    turn_ids = [t.turn_id for t in sample]
    with traces_only(con, traces):
        rows = con.execute(
            "SELECT c.convention, s.scope_name, count(*) AS n FROM llm_calls c "
            "JOIN spans_raw s ON s.trace_id = c.trace_id AND s.span_id = c.span_id "
            "WHERE c.thread_id = ? AND c.turn_id = ANY(?::VARCHAR[]) "
            "GROUP BY ALL ORDER BY n DESC, c.convention, s.scope_name",
            [thread_id, turn_ids],
        ).fetchall()
    return [hint(convention, scope, int(n)) for convention, scope, n in rows]
