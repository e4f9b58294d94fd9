// otel-threads web page: what the page explains (loaded before app.js, whose helpers
// el(), $(), duration(), number() and message() it uses when called).
// - why a turn failed, where its reply would be in the chat (the API's turn.error);
// - why a thread has no messages, and what to set (the API's content_hints);
// - a span's detail: times in UTC, an LLM call's parameters, tokens and messages as a
//   chat, attributes with JSON values folded, events apart, and the raw JSON.
//
// Safety, as in app.js: every text from the data goes in as a text node or an attribute
// value through el(), never as HTML.
"use strict";

// -- times -----------------------------------------------------------------------------

// "2026-12-04 14:03:05.123 UTC" from a stored time (UTC, no zone) or an ISO string.
function utcTime(value) {
  if (value === null || value === undefined || value === "") return "–";
  let text = String(value);
  if (/[zZ]|[+-]\d\d:?\d\d$/.test(text)) {
    const t = new Date(text);
    if (Number.isNaN(t.getTime())) return text;
    text = t.toISOString();
  }
  const m = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?/.exec(text);
  if (!m) return text;
  return `${m[1]} ${m[2]}.${(m[3] || "").padEnd(3, "0").slice(0, 3)} UTC`;
}

// The same, from nanoseconds since the epoch (a span event's time_unix_nano).
function utcNanos(nanos) {
  const ms = Number(nanos) / 1e6;
  if (!Number.isFinite(ms) || ms <= 0) return "–";
  return utcTime(new Date(ms).toISOString());
}

// -- why a turn failed -------------------------------------------------------------------

// The error of a turn (turn.error: type, message, stacktrace, span_name), where its
// reply would be: the exception's type, its message with its line breaks, the stack
// trace folded.
function errorBlock(turn) {
  const e = turn.error;
  if (!e) {
    return el("div", { class: "msg error" },
      el("div", { class: "role" }, "error"),
      el("div", { class: "bubble" }, "This turn failed; its spans record no error message."));
  }
  const where = e.span_name || e.span_id;
  const more = e.error_span_count > 1 ? ` · ${e.error_span_count} spans failed` : "";
  return el("div", { class: "msg error" },
    el("div", { class: "role" }, "error", el("span", { class: "where" }, ` · in ${where}${more}`)),
    el("div", { class: "bubble" },
      el("div", { class: "err-type" }, e.type || "failed"),
      e.message ? el("div", { class: "err-msg" }, e.message)
        : el("div", { class: "err-msg dim" }, "(no message recorded)"),
      e.stacktrace ? el("details", { class: "stack" },
        el("summary", {}, "stack trace"), el("pre", {}, e.stacktrace)) : null));
}

// One line for the turns list: "ValueError: the first line of its message".
function errorLine(turn) {
  const e = turn.error;
  if (!e) return "failed";
  const first = (e.message || "").split("\n")[0];
  return [e.type, first].filter(Boolean).join(": ") || "failed";
}

// -- why there are no messages -----------------------------------------------------------

// What the API says (content_hints) about LLM calls that carry no messages: who made
// them, what to set, why. ``lead`` opens the note.
function hintBox(hints, lead) {
  return el("div", { class: "hint-box", role: "note" },
    el("div", { class: "hint-lead" }, lead),
    hints.map((h) => el("div", { class: "hint-item" },
      el("div", {}, `Made by ${h.producer}`,
        h.scope_name ? el("span", { class: "dim" }, ` (${h.scope_name})`) : null, ". Set ",
        el("code", {}, h.setting), "."),
      el("div", { class: "dim" }, h.note))));
}

function renderHints(v) {
  const box = $("d-hint");
  const hints = v.hints || [];
  box.hidden = !hints.length;
  if (!hints.length) { box.replaceChildren(); return; }
  const n = v.thread ? v.thread.llm_call_count : 0;
  box.replaceChildren(hintBox(hints,
    `No messages recorded: this thread's ${number(n)} LLM call${n === 1 ? "" : "s"} ` +
    "carry no message content."));
}

// -- JSON, folded -------------------------------------------------------------------------

// A JSON value as text when it holds an object or array (attributes often carry JSON in
// strings), else null.
function asJson(value) {
  if (value !== null && typeof value === "object") return value;
  if (typeof value !== "string" || !/^\s*[[{]/.test(value)) return null;
  try {
    const parsed = JSON.parse(value);
    return parsed !== null && typeof parsed === "object" ? parsed : null;
  } catch {
    return null;
  }
}

function leaf(value) {
  if (value === null) return el("span", { class: "j-null" }, "null");
  if (typeof value === "string") return el("span", { class: "j-str" }, value);
  return el("span", { class: "j-lit" }, String(value));
}

// A folded tree: each object and array a <details>, its members built when opened.
function jsonTree(value, open = false) {
  const isArray = Array.isArray(value);
  const keys = Object.keys(value);
  const summary = isArray ? `[…] ${keys.length} item${keys.length === 1 ? "" : "s"}`
    : `{…} ${keys.length} key${keys.length === 1 ? "" : "s"}`;
  // (filled on the summary's click, at once: the toggle event comes a task later)
  const box = el("details", { class: "json" }, el("summary", { onclick: () => fill() }, summary));
  const fill = () => {
    if (box.dataset.filled) return;
    box.dataset.filled = "1";
    box.append(el("div", { class: "j-members" }, keys.map((k) => {
      const v = value[k];
      return el("div", { class: "j-member" },
        el("span", { class: "j-key" }, `${k}: `),
        v !== null && typeof v === "object" ? jsonTree(v) : leaf(v));
    })));
  };
  box.addEventListener("toggle", () => { if (box.open) fill(); });
  if (open) { fill(); box.open = true; }
  return box;
}

const LONG_CHARS = 400; // a text longer than this, or of more lines, is folded
const LONG_LINES = 8;

// An attribute's value: JSON (or a string holding JSON) folded, a long text folded
// under its first line, anything else as text.
function valueNode(value) {
  const json = asJson(value);
  if (json !== null) return jsonTree(json);
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const lines = text.split("\n");
  if (text.length <= LONG_CHARS && lines.length <= LONG_LINES) return text;
  const more = lines.length > 1 ? `${lines.length} lines` : `${number(text.length)} characters`;
  return el("details", { class: "long" },
    el("summary", {}, oneLine(lines[0], 120), el("span", { class: "dim" }, ` · ${more}`)),
    el("div", { class: "long-text" }, text));
}

function pairsTable(pairs) {
  return el("table", {}, el("tbody", {}, pairs.map(([k, v]) =>
    el("tr", {}, el("td", { class: "k" }, k), el("td", {}, v instanceof Node ? v : valueNode(v))))));
}

// -- a span's detail ------------------------------------------------------------------------

// The parameters of an LLM request in a span's attributes: the GenAI conventions'
// gen_ai.request.*, OpenInference's llm.invocation_parameters (JSON), the Vercel AI
// SDK's ai.settings.*, OpenLLMetry's llm.request.*.
function requestParameters(attributes) {
  const out = [];
  for (const [k, v] of Object.entries(attributes || {})) {
    if (k.startsWith("gen_ai.request.") && k !== "gen_ai.request.model") {
      out.push([k.slice("gen_ai.request.".length), v]);
    } else if (k.startsWith("llm.request.") && k !== "llm.request.type") {
      out.push([k.slice("llm.request.".length), v]);
    } else if (k.startsWith("ai.settings.") && !k.startsWith("ai.settings.context.")) {
      out.push([k.slice("ai.settings.".length), v]);
    } else if (k === "llm.invocation_parameters") {
      const params = asJson(v);
      if (params && !Array.isArray(params)) out.push(...Object.entries(params));
      else out.push(["invocation_parameters", v]);
    }
  }
  return out.sort(([a], [b]) => a.localeCompare(b));
}

function section(title, ...children) {
  return el("section", { class: "d-sec" }, el("h4", {}, title), ...children);
}

// The LLM call a span is part of, read from the API: its parameters, tokens and
// messages as a chat (or why it has none).
function llmSection(call, messages, hint, spans, clicked) {
  const byId = new Map(spans.map((x) => [x.span_id, x]));
  const callSpan = byId.get(call.span_id);
  // parameters: the call span's, and those only the span clicked (an outer one) has
  const attrs = { ...(clicked.attributes || {}), ...((callSpan || {}).attributes || {}) };
  const facts = [
    ["provider", call.provider], ["operation", call.operation],
    ["request model", call.request_model], ["response model", call.response_model],
    ["response id", call.response_id],
    ["finish reasons", (call.finish_reasons || []).join(", ") || null],
    ...requestParameters(attrs),
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  const tokens = [
    ["input", call.input_tokens], ["output", call.output_tokens], ["total", call.total_tokens],
    ["cache read", call.cache_read_input_tokens], ["cache write", call.cache_write_input_tokens],
    ["reasoning", call.reasoning_output_tokens],
  ].filter(([, v]) => v !== null && v !== undefined);
  const inputs = messages.filter((m) => m.direction === "input");
  const outputs = messages.filter((m) => m.direction === "output");
  const chat = (list) => list.map((m) => {
    const node = message(m);
    if (m.finish_reason) node.append(el("div", { class: "finish" }, `finish: ${m.finish_reason}`));
    return node;
  });
  // the conversation first, then what was asked of the model and what it cost
  return el("div", { class: "llm" },
    call.span_id === clicked.span_id ? null : el("div", { class: "dim" },
      "Nested LLM spans are one call: its messages and tokens are read from span " +
      `${callSpan ? callSpan.name : ""} (${call.span_id}).`),
    hint ? hintBox([hint], "No messages recorded for this call.") : null,
    inputs.length ? section(`Input · ${inputs.length} message${inputs.length === 1 ? "" : "s"}`,
      el("div", { class: "span-chat" }, chat(inputs))) : null,
    outputs.length ? section(`Output · ${outputs.length} message${outputs.length === 1 ? "" : "s"}`,
      el("div", { class: "span-chat" }, chat(outputs))) : null,
    section("LLM call" + (call.convention ? ` · ${call.convention}` : ""),
      pairsTable(facts.map(([k, v]) => [k, typeof v === "object" ? v : String(v)]))),
    tokens.length ? section("Tokens", el("div", { class: "tokens" },
      tokens.map(([k, v]) => el("span", {}, `${k} `, el("b", {}, number(v)))))) : null);
}

// The exception events of a span, each as the chat shows a turn's error.
function exceptionEvents(s) {
  return (s.events || []).filter((e) => e && e.name === "exception").map((e) => {
    const a = e.attributes || {};
    const text = (x) => (x === undefined || x === null ? null
      : typeof x === "string" ? x : JSON.stringify(x));
    return errorBlock({ error: {
      span_name: s.name, span_id: s.span_id, type: text(a["exception.type"]),
      message: text(a["exception.message"]), stacktrace: text(a["exception.stacktrace"]),
    } });
  });
}

// The detail of span ``s`` of the turn shown (``spans``: all of the turn's): built at
// once, the LLM call's part filled in when the API answers.
function spanDetail(s, spans, threadId, turnId) {
  const facts = [
    ["name", s.name], ["span_id", s.span_id], ["trace_id", s.trace_id],
    ["parent", s.parent_span_id || "–"], ["kind", s.kind], ["service", s.service_name],
    ["scope", s.scope_name],
    ["status", s.status_message ? `${s.status_code}: ${s.status_message}` : s.status_code],
    ["start", utcTime(s.start_time)], ["end", utcTime(s.end_time)],
    ["duration", duration(s.duration_ms)],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  const attributes = Object.entries(s.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
  const events = s.events || [];
  const llm = s.llm_call_span_id ? el("div", { class: "llm-slot dim" }, "Loading the LLM call…")
    : null;
  const readable = el("div", { class: "readable" },
    exceptionEvents(s),
    llm,
    section("Span", pairsTable(facts)),
    section(`Attributes · ${attributes.length}`, pairsTable(attributes)),
    section(`Events · ${events.length}`, events.length ? el("ol", { class: "events" },
      events.map((e) => el("li", {},
        el("div", {}, el("b", {}, e.name || "(unnamed)"), " ",
          el("span", { class: "dim" }, utcNanos(e.time_unix_nano))),
        Object.keys(e.attributes || {}).length
          ? pairsTable(Object.entries(e.attributes).sort(([a], [b]) => a.localeCompare(b)))
          : null)))
      : el("div", { class: "dim" }, "none")),
    Object.keys(s.resource_attributes || {}).length ? section("Resource",
      pairsTable(Object.entries(s.resource_attributes).sort(([a], [b]) => a.localeCompare(b))))
      : null);
  const raw = el("pre", { class: "raw", hidden: true });
  const rawButton = el("button", {
    type: "button", class: "raw-btn", "aria-pressed": "false",
    onclick: () => {
      const showing = raw.hidden;
      if (showing && !raw.textContent) raw.textContent = JSON.stringify(s, null, 2);
      raw.hidden = !showing;
      readable.hidden = showing;
      rawButton.setAttribute("aria-pressed", String(showing));
      rawButton.textContent = showing ? "Readable" : "Raw JSON";
    },
  }, "Raw JSON");
  const box = el("div", { class: "attrs span-detail" },
    el("div", { class: "d-tools" }, rawButton), readable, raw);
  if (llm) {
    const url = `/threads/${encodeURIComponent(threadId)}/turns/${encodeURIComponent(turnId)}` +
      `/spans/${encodeURIComponent(s.span_id)}/messages`;
    api(url).then((res) => {
      if (!res.llm_call) { llm.remove(); return; }
      llm.replaceWith(llmSection(res.llm_call, res.messages || [], res.content_hint, spans, s));
    }, (err) => {
      llm.textContent = `Could not load the LLM call: ${err.message}`;
    });
  }
  return box;
}
