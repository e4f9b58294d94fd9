// otel-threads web page: the threads list, a thread's drawer (turns, chat, forks) and
// a turn's span tree, over the collector's JSON API. No framework, no build step.
//
// Safety: every text that comes from the data goes into the page as a text node or
// an attribute value (el() below), never as HTML; the server's Content-Security-Policy
// lets no script run but this file.
"use strict";

const state = {
  sort: { field: "last_updated", dir: "desc" },
  offset: 0,
  limit: 50,
  q: "",
  windowSecs: "",
  total: 0,
  selected: null, // thread id in the drawer
  through: null, // the turn whose branch the drawer shows (null: the current branch)
  detail: null,
  detailKey: "",
  listKey: "",
  turn: null, // the active turn id
  spansOf: null, // the turn whose span tree is shown
  ignoreScrollUntil: 0,
};

// -- small helpers ------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

function parseTime(value) {
  if (!value) return null;
  // stored times are UTC without a zone
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : value + "Z");
}

function ago(value) {
  const t = parseTime(value);
  if (!t) return "–";
  const s = (Date.now() - t.getTime()) / 1000;
  if (s < 0) return "just now";
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)}s`;
  return `${(ms / 60000).toFixed(1)}m`;
}

function number(n) {
  return (n || 0).toLocaleString("en-US");
}

function oneLine(text, max = 200) {
  if (text === null || text === undefined) return "";
  const s = String(text).replace(/\s+/g, " ").trim();
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
}

function showError(message) {
  const status = $("status");
  status.textContent = message || "";
  status.classList.toggle("error", Boolean(message));
}

// -- the API (a bearer token, when the collector wants one, is asked once) ----------

async function api(path) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem("otel-threads-token");
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { headers });
    if (response.status === 401 && attempt === 0) {
      const given = window.prompt("This collector needs its token (--token):");
      if (!given) break;
      sessionStorage.setItem("otel-threads-token", given.trim());
      continue;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.error || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }
  throw new Error("the collector wants a token");
}

// -- the threads list -----------------------------------------------------------------

function listParams() {
  const p = new URLSearchParams({
    limit: state.limit, offset: state.offset, sort: `${state.sort.field}:${state.sort.dir}`,
  });
  if (state.q) p.set("q", state.q);
  if (state.windowSecs) {
    p.set("after", new Date(Date.now() - Number(state.windowSecs) * 1000).toISOString());
  }
  return p;
}

async function loadList() {
  let res;
  try {
    res = await api(`/ui/threads?${listParams()}`);
  } catch (err) {
    showError(`Could not load threads: ${err.message}`);
    return;
  }
  showError("");
  state.total = res.total;
  if (state.offset >= res.total && res.total > 0) { // the list shrank under us
    state.offset = Math.max(0, Math.floor((res.total - 1) / state.limit) * state.limit);
    return loadList();
  }
  const key = JSON.stringify(res);
  if (key !== state.listKey) {
    state.listKey = key;
    renderList(res.threads);
  } else {
    refreshTimes();
  }
  renderPager();
}

function threadRow(t) {
  const tokens = (t.input_tokens || 0) + (t.output_tokens || 0);
  return el("tr", { dataset: { id: t.thread_id }, tabindex: 0 },
    el("td", { class: "id", title: t.thread_id }, t.thread_id),
    el("td", { class: "num" }, number(t.turn_count)),
    el("td", { title: t.start_time || "", dataset: { time: t.start_time || "" } },
       ago(t.start_time)),
    el("td", { title: t.last_updated || "", dataset: { time: t.last_updated || "" } },
       ago(t.last_updated)),
    el("td", { class: "num" }, duration(t.p50_turn_duration_ms)),
    el("td", { class: "num" }, duration(t.p99_turn_duration_ms)),
    el("td", { class: "num" }, number(tokens)),
    el("td", { class: "num" + (t.error_turn_count ? " err" : " dim") }, number(t.error_turn_count)),
    el("td", { class: "num" + (t.fork_count ? "" : " dim") }, number(t.fork_count)),
    el("td", { title: oneLine(t.first_input, 2000) }, oneLine(t.first_input)),
    el("td", { title: oneLine(t.last_output, 2000), class: "dim" }, oneLine(t.last_output)),
  );
}

function renderList(threads) {
  const body = document.querySelector("#threads tbody");
  const wrap = $("list-wrap");
  const scroll = wrap.scrollTop; // rows are replaced in place: the view stays put
  body.replaceChildren(...threads.map(threadRow));
  for (const row of body.rows) row.classList.toggle("selected", row.dataset.id === state.selected);
  wrap.scrollTop = scroll;
  $("empty").hidden = threads.length > 0 || state.total > 0;
}

function refreshTimes() {
  for (const cell of document.querySelectorAll("#threads td[data-time]")) {
    cell.textContent = ago(cell.dataset.time);
  }
}

function renderPager() {
  const first = state.total ? state.offset + 1 : 0;
  const last = Math.min(state.offset + state.limit, state.total);
  $("count").textContent = `${number(first)}–${number(last)} of ${number(state.total)} threads`;
  $("prev").disabled = state.offset === 0;
  $("next").disabled = last >= state.total;
  for (const th of document.querySelectorAll("#threads th")) {
    if (th.dataset.sort === state.sort.field) {
      th.setAttribute("aria-sort", state.sort.dir === "asc" ? "ascending" : "descending");
    } else {
      th.removeAttribute("aria-sort");
    }
  }
}

// -- the drawer: turns, chat, forks ---------------------------------------------------

async function openThread(id, through = null, keepView = false) {
  const changed = id !== state.selected;
  state.selected = id;
  state.through = through;
  for (const row of document.querySelectorAll("#threads tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
  let detail;
  try {
    const query = through ? `?through_turn=${encodeURIComponent(through)}` : "";
    detail = await api(`/threads/${encodeURIComponent(id)}${query}`);
  } catch (err) {
    showError(`Could not load thread ${id}: ${err.message}`);
    return;
  }
  if (state.selected !== id) return; // another thread was opened meanwhile
  const key = JSON.stringify(detail);
  const drawer = $("drawer");
  const wasOpen = !drawer.hidden;
  drawer.hidden = false;
  if (key === state.detailKey && wasOpen) return; // nothing new: keep everything as it is
  state.detailKey = key;
  state.detail = detail;
  const chat = $("d-chat");
  const scroll = chat.scrollTop;
  renderDetail(detail);
  if (changed || !keepView) {
    if (!keepView) showThreadView();
    const first = detail.branch.length ? detail.branch[0] : null;
    state.turn = changed ? first : (detail.turns.some((t) => t.turn_id === state.turn)
      ? state.turn : first);
    markTurn(state.turn);
    chat.scrollTop = 0;
  } else { // a refresh: keep the reader where they were
    chat.scrollTop = scroll;
    markTurn(state.turn);
  }
}

function closeDrawer() {
  $("drawer").hidden = true;
  state.selected = null;
  state.detailKey = "";
  state.spansOf = null;
  for (const row of document.querySelectorAll("#threads tbody tr.selected")) {
    row.classList.remove("selected");
  }
}

function renderDetail(d) {
  const t = d.thread;
  $("d-title").textContent = t.thread_id;
  const stat = (label, value) => el("span", {}, label, " ", el("b", {}, value));
  $("d-stats").replaceChildren(...[
    stat("turns", number(t.turn_count)),
    stat("started", ago(t.start_time)),
    stat("updated", ago(t.last_updated)),
    stat("p50", duration(t.p50_turn_duration_ms)),
    stat("p99", duration(t.p99_turn_duration_ms)),
    stat("tokens", number((t.input_tokens || 0) + (t.output_tokens || 0))),
    stat("LLM calls", number(t.llm_call_count)),
    t.error_turn_count ? stat("errors", number(t.error_turn_count)) : null,
    t.fork_count ? stat("forks", number(t.fork_count)) : null,
    t.models && t.models.length ? stat("models", t.models.join(", ")) : null,
    t.user_id ? stat("user", t.user_id) : null,
  ].filter(Boolean));
  renderForks(d);
  renderTurns(d);
  renderChat(d);
}

function turnIndex(d) {
  return Object.fromEntries(d.turns.map((t) => [t.turn_id, t]));
}

function renderForks(d) {
  const box = $("d-forks");
  const turns = turnIndex(d);
  const onBranch = new Set(d.branch);
  box.hidden = !d.forks.length;
  box.replaceChildren(...d.forks.map((f) => {
    const parent = turns[f.parent_turn_id];
    return el("div", { class: "fork" },
      el("span", {}, `Fork after turn ${parent ? parent.turn_index : "?"}, ` +
                     `${f.child_count} answers:`),
      f.child_turn_ids.map((child, i) => {
        const turn = turns[child];
        const current = onBranch.has(child);
        return el("button", {
          type: "button", class: current ? "current" : "",
          title: `started ${f.child_start_times[i] || ""}`,
          "aria-pressed": current ? "true" : "false",
          onclick: () => openThread(d.thread.thread_id, child, true).then(() => selectTurn(child)),
        }, `turn ${turn ? turn.turn_index : "?"} · ${ago(f.child_start_times[i])}`);
      }),
    );
  }));
}

function renderTurns(d) {
  const onBranch = new Set(d.branch);
  const forkChildren = new Map(d.forks.map((f) => [f.parent_turn_id, f.child_count]));
  const items = d.turns.map((t) => {
    const status = t.is_running ? "running" : (t.has_error ? "error" : "ok");
    const tokens = (t.input_tokens || 0) + (t.output_tokens || 0);
    return el("li", {
      class: "turn" + (onBranch.has(t.turn_id) ? "" : " off-branch"),
      dataset: { turn: t.turn_id }, tabindex: 0,
      title: onBranch.has(t.turn_id) ? null : "on another branch: click to show that branch",
      onclick: () => selectTurn(t.turn_id, true),
    },
    el("div", { class: "turn-top" },
      el("span", { class: `dot ${status}`, title: status }),
      el("span", { class: "idx" }, `#${t.turn_index}`),
      el("span", {}, t.is_running ? "running" : duration(t.duration_ms)),
      el("span", {}, `${number(tokens)} tok`),
      forkChildren.has(t.turn_id)
        ? el("span", { class: "badge fork", title: "two or more turns answer this one" },
             `fork ×${forkChildren.get(t.turn_id)}`) : null,
      t.link_status === "cycle"
        ? el("span", { class: "badge cycle", title: "its previous-turn links loop (bad data)" },
             "cycle") : null,
      el("span", { class: "spacer" }),
      el("button", {
        type: "button", class: "spans-btn", title: "the turn's spans",
        onclick: (event) => { event.stopPropagation(); openSpans(t.turn_id); },
      }, "spans"),
    ),
    t.first_input ? el("div", { class: "io in" }, oneLine(t.first_input, 160)) : null,
    t.last_output ? el("div", { class: "io out" }, "→ ", oneLine(t.last_output, 160)) : null,
    !t.first_input && !t.last_output ? el("div", { class: "io out" }, oneLine(t.name, 80)) : null,
    );
  });
  $("d-turns").replaceChildren(...items);
}

function argumentsText(args) {
  if (args === null || args === undefined) return "";
  if (typeof args === "string") {
    try { return JSON.stringify(JSON.parse(args), null, 2); } catch { return args; }
  }
  return JSON.stringify(args, null, 2);
}

function message(m) {
  const role = m.role || "unknown";
  const known = ["user", "assistant", "system", "tool"].includes(role) ? role : "assistant";
  const calls = Array.isArray(m.tool_calls) ? m.tool_calls : [];
  let label = role;
  if (role === "tool") label = m.tool_call_id ? `tool result · ${m.tool_call_id}` : "tool result";
  else if (calls.length && !m.content) label = `${role} · tool call`;
  return el("div", { class: `msg ${known}`, dataset: { seq: m.seq } },
    el("div", { class: "role" }, label),
    m.content !== null && m.content !== undefined && m.content !== ""
      ? el("div", { class: "bubble" }, m.content) : null,
    calls.map((c) => el("div", { class: "call" },
      el("div", { class: "call-label" }, c.id ? `tool call · ${c.id}` : "tool call"),
      el("span", { class: "fn" }, c.name || c.function?.name || "?"),
      "(", argumentsText(c.arguments ?? c.function?.arguments), ")")),
  );
}

function renderChat(d) {
  const turns = turnIndex(d);
  const byTurn = new Map();
  for (const m of d.transcript) {
    if (!byTurn.has(m.turn_id)) byTurn.set(m.turn_id, []);
    byTurn.get(m.turn_id).push(m);
  }
  const sections = d.branch.map((id) => {
    const t = turns[id] || {};
    const messages = byTurn.get(id) || [];
    return el("section", { class: "turn-sec", dataset: { turn: id } },
      el("div", { class: "sec-head" },
        el("span", {}, `Turn ${t.turn_index ?? "?"}`),
        el("span", {}, t.is_running ? "running" : duration(t.duration_ms)),
        el("span", {}, oneLine(t.name, 60))),
      messages.length ? messages.map(message)
        : el("div", { class: "no-msgs" }, "No messages recorded in this turn."));
  });
  const orphans = byTurn.get(null) || [];
  if (orphans.length) sections.push(el("section", { class: "turn-sec" }, orphans.map(message)));
  $("d-chat").replaceChildren(...sections);
}

// -- turn selection and chat sync -------------------------------------------------------

function markTurn(id) {
  state.turn = id;
  for (const li of document.querySelectorAll("#d-turns .turn")) {
    const on = li.dataset.turn === id;
    li.classList.toggle("active", on);
    if (on) li.scrollIntoView({ block: "nearest" });
  }
  for (const sec of document.querySelectorAll("#d-chat .turn-sec")) {
    sec.classList.toggle("active", sec.dataset.turn === id);
  }
}

function selectTurn(id, fromClick = false) {
  const d = state.detail;
  if (!d) return;
  if (fromClick && !d.branch.includes(id)) { // a turn on another branch: show that branch
    openThread(d.thread.thread_id, id, true).then(() => selectTurn(id));
    return;
  }
  markTurn(id);
  const section = document.querySelector(`#d-chat .turn-sec[data-turn="${CSS.escape(id)}"]`);
  if (section) {
    state.ignoreScrollUntil = Date.now() + 400;
    section.scrollIntoView({ block: "start" });
  }
}

function stepTurn(delta) {
  const d = state.detail;
  if (!d || !d.branch.length) return;
  const at = d.branch.indexOf(state.turn);
  const next = Math.min(d.branch.length - 1, Math.max(0, (at < 0 ? 0 : at + delta)));
  selectTurn(d.branch[next]);
}

function currentSection() {
  // the turn whose section holds the top of the chat's view
  const chat = $("d-chat");
  const top = chat.scrollTop + chat.offsetTop + 8;
  let found = null;
  for (const sec of chat.querySelectorAll(".turn-sec[data-turn]")) {
    if (sec.offsetTop <= top) found = sec.dataset.turn;
    else break;
  }
  return found;
}

let scrollPending = false;
function onChatScroll() {
  if (scrollPending) return;
  scrollPending = true;
  requestAnimationFrame(() => {
    scrollPending = false;
    if (Date.now() < state.ignoreScrollUntil) return;
    const id = currentSection();
    if (id && id !== state.turn) markTurn(id);
  });
}

// -- a turn's span tree ---------------------------------------------------------------

function showThreadView() {
  $("d-spans").hidden = true;
  $("d-thread").hidden = false;
  state.spansOf = null;
}

async function openSpans(turnId) {
  const d = state.detail;
  if (!d) return;
  let res;
  try {
    res = await api(`/threads/${encodeURIComponent(d.thread.thread_id)}/turns/` +
                    `${encodeURIComponent(turnId)}/spans`);
  } catch (err) {
    showError(`Could not load the spans: ${err.message}`);
    return;
  }
  state.spansOf = turnId;
  markTurn(turnId);
  const turn = turnIndex(d)[turnId] || {};
  $("s-title").textContent = `Turn ${turn.turn_index ?? "?"} · ${res.spans.length} spans`;
  renderSpanTree(res.spans);
  $("d-thread").hidden = true;
  $("d-spans").hidden = false;
  $("s-back").focus();
}

function renderSpanTree(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parent_span_id && ids.has(s.parent_span_id)) {
      if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
      children.get(s.parent_span_id).push(s);
    } else {
      roots.push(s);
    }
  }
  const times = spans.flatMap((s) => [parseTime(s.start_time), parseTime(s.end_time)])
    .filter(Boolean).map((t) => t.getTime());
  const t0 = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - t0);
  const rows = [];
  const walk = (s, depth) => {
    const start = parseTime(s.start_time)?.getTime() ?? t0;
    const end = parseTime(s.end_time)?.getTime() ?? start;
    const isError = s.status_code === "ERROR";
    const row = el("div", {
      class: "span-row", role: "treeitem", tabindex: 0, "aria-expanded": "false",
      onclick: () => toggleAttrs(row, s),
      onkeydown: (e) => { if (e.key === "Enter") toggleAttrs(row, s); },
    },
    el("div", { class: "span-name", title: s.name, style: { paddingLeft: `${depth * 16}px` } },
      depth ? el("span", { class: "indent" }, "└ ") : null,
      isError ? el("span", { class: "err" }, "! ") : null,
      s.name || "(unnamed)", el("span", { class: "svc" }, s.service_name || "")),
    el("div", { class: "bar-track" },
      el("div", {
        class: "bar" + (isError ? " error" : ""),
        style: { left: `${((start - t0) / span) * 100}%`, width: `${((end - start) / span) * 100}%` },
      })),
    el("div", { class: "span-dur" }, duration(s.duration_ms)));
    rows.push(row);
    for (const c of children.get(s.span_id) || []) walk(c, depth + 1);
  };
  for (const r of roots) walk(r, 0);
  $("s-tree").replaceChildren(...rows);
}

function valueText(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function toggleAttrs(row, s) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("attrs")) {
    next.remove();
    row.classList.remove("open");
    row.setAttribute("aria-expanded", "false");
    return;
  }
  const pairs = [
    ["span_id", s.span_id], ["trace_id", s.trace_id], ["kind", s.kind],
    ["status", s.status_message ? `${s.status_code}: ${s.status_message}` : s.status_code],
    ["start", s.start_time], ["duration", duration(s.duration_ms)],
    ...Object.entries(s.attributes || {}).sort(([a], [b]) => a.localeCompare(b)),
  ];
  const events = (s.events || []).map((e) => [`event: ${e.name || ""}`, e.attributes || {}]);
  const box = el("div", { class: "attrs" },
    el("table", {}, el("tbody", {}, [...pairs, ...events].map(([k, v]) =>
      el("tr", {}, el("td", { class: "k" }, k), el("td", {}, valueText(v)))))));
  row.after(box);
  row.classList.add("open");
  row.setAttribute("aria-expanded", "true");
}

// -- wiring -----------------------------------------------------------------------------

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : window.matchMedia("(prefers-color-scheme: dark)").matches;
  const theme = dark ? "light" : "dark";
  localStorage.setItem("otel-threads-theme", theme);
  applyTheme(theme);
}

function onKey(event) {
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT")) return;
  if ($("drawer").hidden) return;
  if (event.key === "Escape") {
    event.preventDefault();
    if (!$("d-spans").hidden) showThreadView();
    else closeDrawer();
  } else if (event.key === "ArrowRight" || event.key === "ArrowDown") {
    if ($("d-spans").hidden) { event.preventDefault(); stepTurn(1); }
  } else if (event.key === "ArrowLeft" || event.key === "ArrowUp") {
    if ($("d-spans").hidden) { event.preventDefault(); stepTurn(-1); }
  }
}

let typing = null;
function init() {
  applyTheme(localStorage.getItem("otel-threads-theme"));
  $("theme").addEventListener("click", toggleTheme);
  for (const th of document.querySelectorAll("#threads th")) {
    th.addEventListener("click", () => {
      const field = th.dataset.sort;
      const textual = ["thread_id", "first_input", "last_output"].includes(field);
      state.sort = state.sort.field === field
        ? { field, dir: state.sort.dir === "desc" ? "asc" : "desc" }
        : { field, dir: textual ? "asc" : "desc" };
      state.offset = 0;
      loadList();
    });
  }
  document.querySelector("#threads tbody").addEventListener("click", (event) => {
    const row = event.target.closest("tr");
    if (row) openThread(row.dataset.id);
  });
  document.querySelector("#threads tbody").addEventListener("keydown", (event) => {
    const row = event.target.closest("tr");
    if (row && event.key === "Enter") openThread(row.dataset.id);
  });
  $("q").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.q = $("q").value.trim(); state.offset = 0; loadList(); }, 200);
  });
  $("window").addEventListener("change", () => {
    state.windowSecs = $("window").value; state.offset = 0; loadList();
  });
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit); loadList();
  });
  $("next").addEventListener("click", () => { state.offset += state.limit; loadList(); });
  $("d-close").addEventListener("click", closeDrawer);
  $("s-back").addEventListener("click", showThreadView);
  $("d-chat").addEventListener("scroll", onChatScroll, { passive: true });
  document.addEventListener("keydown", onKey);
  loadList();
  setInterval(() => {
    if (!$("live").checked || document.hidden) return;
    loadList();
    if (state.selected && state.spansOf === null) openThread(state.selected, state.through, true);
  }, 3000);
}

document.addEventListener("DOMContentLoaded", init);
