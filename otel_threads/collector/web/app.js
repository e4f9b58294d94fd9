// otel-threads web page: the threads list, a thread's drawer (turns, chat, forks) and
// a turn's span tree, over the collector's JSON API. No framework, no build step.
// What the page explains (a turn's error, a span's detail, why there are no messages)
// is in explain.js; annotations (thumbs, notes, the list's column) in annotate.js.
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
  view: null, // the open thread's pages (newView)
  listKey: "",
  listUrl: "", // the list's last question, and the ETag of its answer
  listEtag: null,
  turn: null, // the active turn id
  spansOf: null, // the turn whose span tree is shown
  spanTree: null, // its spans, and whose they are
  ignoreScrollUntil: 0,
};

// -- small helpers ------------------------------------------------------------------

// The URL follows the page's state (find.js syncUrl), at most every 300 ms: scrolling
// the chat moves the active turn often, and browsers throttle history updates.
let urlTimer = null;
function syncUrlSoon() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(syncUrl, 300);
}

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
  // times come as UTC with their zone ("...Z"); one without is UTC too
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

// ``headers`` with the token, when the page has one (reads here, writes in annotate.js).
function authHeaders(headers) {
  const token = sessionStorage.getItem("otel-threads-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

// After a 401: ask for the token; false when none was given.
function askToken() {
  const given = window.prompt("This collector needs its token (--token):");
  if (!given) return false;
  sessionStorage.setItem("otel-threads-token", given.trim());
  return true;
}

// GET path; with etag, a conditional request: {notModified: true} when the answer
// would be the same (HTTP 304, no body). Else {body, etag}. A live refresh asks with
// wait=0: what is derived now, without waiting for derivation to catch up (the next
// refresh shows the rest); what the user asks for waits (the API's default).
async function request(path, etag = null, live = false) {
  if (live) path += `${path.includes("?") ? "&" : "?"}wait=0`;
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = authHeaders({ Accept: "application/json" });
    if (etag) headers["If-None-Match"] = etag;
    const response = await fetch(path, { headers, cache: "no-store" });
    if (response.status === 401 && attempt === 0) {
      if (!askToken()) break;
      continue;
    }
    if (response.status === 304) return { notModified: true, etag };
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(body.error || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return { body, etag: response.headers.get("ETag") };
  }
  throw new Error("the collector wants a token");
}

async function api(path) {
  return (await request(path)).body;
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
  return findParams(p); // the search and filter chips (find.js)
}

let listAsked = 0; // loadList calls so far

async function loadList(live = false) {
  const url = `/ui/threads?${listParams()}`;
  // answers may come back out of order (a live refresh, then a click on a header):
  // only the answer to the latest question is shown
  const asked = ++listAsked;
  let res;
  try {
    // unchanged since the last answer to the same question: a 304, nothing to redo
    const got = await request(url, url === state.listUrl ? state.listEtag : null, live);
    if (asked !== listAsked) return;
    if (got.notModified) {
      showError("");
      refreshTimes();
      renderPager();
      return;
    }
    res = got.body;
    state.listUrl = url;
    state.listEtag = got.etag;
  } catch (err) {
    if (asked === listAsked) showError(`Could not load threads: ${err.message}`);
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
    el("td", { class: "id", title: t.thread_id }, t.thread_id, endMark(t)),
    el("td", { class: "num" }, number(t.turn_count)),
    el("td", { title: utcTime(t.start_time), dataset: { time: t.start_time || "" } },
       ago(t.start_time)),
    el("td", { title: utcTime(t.last_updated), dataset: { time: t.last_updated || "" } },
       ago(t.last_updated)),
    el("td", { class: "num" }, duration(t.p50_turn_duration_ms)),
    el("td", { class: "num" }, duration(t.p99_turn_duration_ms)),
    el("td", { class: "num" }, number(tokens)),
    costCell(t),
    el("td", { class: "num" + (t.error_turn_count ? " err" : " dim") }, number(t.error_turn_count)),
    el("td", { class: "num" + (t.fork_count ? "" : " dim") }, number(t.fork_count)),
    notesCell(t),
    el("td", { class: "dim", title: t.user_id || "" }, t.user_id || ""),
    el("td", { class: "dim", title: t.project || "" }, t.project || ""),
    el("td", { title: oneLine(t.first_input, 2000) }, oneLine(t.first_input)),
    el("td", { title: oneLine(t.last_output, 2000), class: "dim" }, oneLine(t.last_output)),
  );
}

// A thread's known cost: "$0.0123" ("+": some calls have no known price), "—" for none.
function costCell(t) {
  if (t.cost_usd === null || t.cost_usd === undefined) {
    const why = t.llm_call_count ? "no known price for its models" : "no LLM calls";
    return el("td", { class: "num dim", title: why }, "—");
  }
  const text = t.cost_usd < 1 ? `$${t.cost_usd.toFixed(4)}` : `$${t.cost_usd.toFixed(2)}`;
  const more = t.unpriced_call_count
    ? `; ${t.unpriced_call_count} calls of no known price not counted` : "";
  return el("td", { class: "num", title: `$${t.cost_usd}${more}` },
    text + (t.unpriced_call_count ? "+" : ""));
}

function renderList(threads) {
  const body = document.querySelector("#threads tbody");
  const wrap = $("list-wrap");
  const scroll = wrap.scrollTop; // rows are replaced in place: the view stays put
  body.replaceChildren(...threads.map(threadRow));
  for (const row of body.rows) row.classList.toggle("selected", row.dataset.id === state.selected);
  wrap.scrollTop = scroll;
  renderEmpty(threads.length);
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
//
// A thread's turns come in pages (GET /threads/{id}?turn_offset=&turn_limit=): the
// drawer holds one segment per page, in both panes, a placeholder of about the right
// height until the page is in view (or within a screen of it), then its turns and
// chat sections. The live refresh asks again for one page in view with the ETag of its
// last answer: an unchanged thread is a 304 with no body. When it changed, the pages
// in view are fetched again, the others when they come into view.

const PAGE_TURNS = 100; // turns per page
const TURN_EST = 80; // px: a turn in the list, before it is loaded
const SEC_EST = 200; // px: a turn's chat section, before it is loaded
const MAX_LOADS = 3; // pages fetched at once

function gridEnd(start) {
  return (Math.floor(start / PAGE_TURNS) + 1) * PAGE_TURNS;
}

function newView(id, through) {
  return {
    id, through, thread: null, turnsTotal: 0, segs: [], forks: new Map(), loads: 0,
    byTurn: new Map(), // turn id -> turn, of the loaded pages
    onBranch: new Set(), // turn ids on the branch shown, of the loaded pages
    hints: [], // why there are no messages (the first page's content_hints)
  };
}

function segUrl(v, seg, after = null) {
  const p = new URLSearchParams({
    turn_offset: seg.start, turn_limit: gridEnd(seg.start) - seg.start,
  });
  if (v.through) p.set("through_turn", v.through);
  if (after !== null) p.set("transcript_after", after);
  return `/threads/${encodeURIComponent(v.id)}?${p}`;
}

// One page, conditional on the ETag of its last answer when it has one. A turn whose
// transcript is longer than a page holds goes on in the answers that follow.
async function fetchSeg(v, seg, conditional, live = false) {
  const url = segUrl(v, seg);
  const got = await request(url, conditional && seg.url === url ? seg.etag : null, live);
  if (got.notModified) return null;
  const res = got.body;
  let next = res.page.next;
  while (next && next.transcript_after !== undefined && next.turn_offset === seg.start) {
    const more = (await request(segUrl(v, seg, next.transcript_after))).body;
    res.transcript.push(...more.transcript);
    res.page = { ...res.page, next: more.page.next };
    next = more.page.next;
  }
  return { res, url, etag: got.etag };
}

function makeSegs(v, total, from = 0) {
  const segs = [];
  for (let s = from; s < total; s = gridEnd(s)) {
    segs.push({ start: s, end: Math.min(gridEnd(s), total), status: "pending", stale: false });
  }
  return segs;
}

// The answer for a segment: its turns, transcript and branch; the thread's row and
// totals; the segment shrinks to what came when the page ended early.
function applyPage(v, seg, got) {
  const { res } = got;
  v.thread = res.thread;
  if (seg.start === 0) v.hints = res.content_hints || []; // said on the first page
  for (const f of res.forks) v.forks.set(f.parent_turn_id, f);
  for (const t of seg.turns || []) { v.byTurn.delete(t.turn_id); v.onBranch.delete(t.turn_id); }
  seg.turns = res.turns;
  seg.branch = res.branch;
  seg.transcript = res.transcript;
  takeNotes(v, seg, res); // its annotations (annotate.js)
  seg.url = got.url;
  seg.etag = got.etag;
  seg.status = "loaded";
  seg.stale = false;
  for (const t of res.turns) v.byTurn.set(t.turn_id, t);
  for (const id of res.branch) v.onBranch.add(id);
  const next = res.page.next;
  const end = next && next.turn_offset > seg.start ? next.turn_offset
    : Math.min(gridEnd(seg.start), res.page.turns_total);
  seg.end = Math.max(seg.start + res.turns.length, Math.min(end, gridEnd(seg.start)));
  v.turnsTotal = res.page.turns_total;
}

// Segments to match the thread's turn count now, one after the other without overlap:
// a page that ended early leaves a gap (a pending segment of its own), a page that
// came longer covers what followed, a thread that grew gets new pages at the end.
function reshape(v) {
  const out = [];
  let at = 0; // where the next segment starts
  for (const seg of v.segs) {
    if (out.length && (seg.start >= v.turnsTotal || seg.end <= at)) { removeSeg(seg); continue; }
    if (seg.start < at) { // partly covered by the one before: fetch the rest again
      seg.start = at;
      if (seg.status === "loaded") Object.assign(seg, { status: "pending", turns: null, branch: null });
    }
    if (seg.start > at) out.push({ start: at, end: seg.start, status: "pending", stale: false });
    if (seg.status !== "loaded") seg.end = Math.max(seg.end, Math.min(gridEnd(seg.start), v.turnsTotal));
    out.push(seg);
    at = seg.end;
  }
  if (v.turnsTotal > at) out.push(...makeSegs(v, v.turnsTotal, at));
  v.segs = out;
}

function removeSeg(seg) {
  seg.turnEl?.remove();
  seg.chatEl?.remove();
}

async function openThread(id, through = null, keepView = false) {
  const changed = id !== state.selected;
  state.selected = id;
  state.through = through;
  for (const row of document.querySelectorAll("#threads tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
  const v = newView(id, through);
  const first = { start: 0, end: PAGE_TURNS, status: "loading", stale: false };
  let got;
  try {
    got = await fetchSeg(v, first, false);
  } catch (err) {
    showError(`Could not load thread ${id}: ${err.message}`);
    return;
  }
  if (state.selected !== id || state.through !== through) return; // another one meanwhile
  applyPage(v, first, got);
  v.segs = [first];
  reshape(v);
  state.view = v;
  $("drawer").hidden = false;
  renderHeader(v);
  renderSkeleton(v);
  const chat = $("d-chat");
  if (changed || !keepView) {
    if (!keepView) showThreadView();
    state.turn = first.branch.length ? first.branch[0] : null;
  }
  markTurn(state.turn);
  if (changed || !keepView) chat.scrollTop = 0;
  ensureVisible();
  syncUrlSoon();
}

function closeDrawer() {
  $("drawer").hidden = true;
  state.selected = null;
  state.view = null;
  state.spansOf = null;
  for (const row of document.querySelectorAll("#threads tbody tr.selected")) {
    row.classList.remove("selected");
  }
  syncUrlSoon();
}

function renderHeader(v) {
  const t = v.thread;
  $("d-title").textContent = t.thread_id;
  const stat = (label, value) => el("span", {}, label, " ", el("b", {}, value));
  $("d-stats").replaceChildren(...[
    endMark(t), // "ended" / "reopened" (annotate.js)
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
  renderForks(v);
  renderHints(v);
  renderThreadNotes(v); // thumbs and notes of the whole thread (annotate.js)
}

function renderForks(v) {
  const box = $("d-forks");
  const forks = [...v.forks.values()];
  box.hidden = !forks.length;
  box.replaceChildren(...forks.map((f) => el("div", { class: "fork" },
    el("span", {}, `Fork after turn ${f.parent_turn_index ?? "?"}, ${f.child_count} answers:`),
    f.child_turn_ids.map((child, i) => {
      const current = v.onBranch.has(child) || (!v.through && child === f.current_child_turn_id);
      const index = (f.child_turn_indexes || [])[i];
      return el("button", {
        type: "button", class: current ? "current" : "",
        title: `started ${f.child_start_times[i] || ""}`,
        "aria-pressed": current ? "true" : "false",
        onclick: () => openThread(v.id, child, true).then(() => goToTurn(child, index)),
      }, `turn ${index ?? "?"} · ${ago(f.child_start_times[i])}`);
    }))));
}

// Both panes: a wrapper per segment, placeholders sized for what they stand for.
function renderSkeleton(v) {
  const turns = $("d-turns");
  const chat = $("d-chat");
  turns.replaceChildren();
  chat.replaceChildren();
  for (const seg of v.segs) {
    seg.turnEl = null;
    seg.chatEl = null;
    placeSeg(v, seg);
  }
}

// Put a segment's wrappers in place (after the previous segment's), then fill them.
function placeSeg(v, seg) {
  if (!seg.turnEl) {
    seg.turnEl = el("li", { class: "seg" });
    seg.chatEl = el("div", { class: "seg" });
    const before = v.segs[v.segs.indexOf(seg) - 1];
    if (before && before.turnEl) {
      before.turnEl.after(seg.turnEl);
      before.chatEl.after(seg.chatEl);
    } else {
      $("d-turns").prepend(seg.turnEl);
      $("d-chat").prepend(seg.chatEl);
    }
  }
  seg.turnEl.dataset.start = seg.start;
  seg.chatEl.dataset.start = seg.start;
  fillSeg(v, seg);
}

function fillSeg(v, seg) {
  const pending = seg.status !== "loaded";
  for (const node of [seg.turnEl, seg.chatEl]) node.classList.toggle("pending", pending);
  if (pending) {
    const n = seg.end - seg.start;
    seg.turnEl.style.height = `${n * TURN_EST}px`;
    seg.chatEl.style.height = `${n * SEC_EST}px`;
    seg.turnEl.replaceChildren();
    seg.chatEl.replaceChildren();
    return;
  }
  seg.turnEl.style.height = "";
  seg.chatEl.style.height = "";
  seg.turnEl.replaceChildren(el("ol", { class: "turns" }, renderTurns(v, seg)));
  seg.chatEl.replaceChildren(...renderChat(v, seg));
  for (const node of seg.turnEl.querySelectorAll(".turn")) {
    node.classList.toggle("active", node.dataset.turn === state.turn);
  }
  for (const node of seg.chatEl.querySelectorAll(".turn-sec")) {
    node.classList.toggle("active", node.dataset.turn === state.turn);
  }
}

function renderTurns(v, seg) {
  const onBranch = new Set(seg.branch);
  const forkChildren = new Map([...v.forks.values()].map((f) => [f.parent_turn_id, f.child_count]));
  return seg.turns.map((t) => {
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
      notesMark(v, t.turn_id),
      el("span", { class: "spacer" }),
      el("button", {
        type: "button", class: "spans-btn", title: "the turn's spans",
        onclick: (event) => { event.stopPropagation(); openSpans(t.turn_id); },
      }, "spans"),
    ),
    t.first_input ? el("div", { class: "io in" }, oneLine(t.first_input, 160)) : null,
    t.last_output ? el("div", { class: "io out" }, "→ ", oneLine(t.last_output, 160)) : null,
    t.has_error ? el("div", { class: "io err" }, "✕ ", oneLine(errorLine(t), 160)) : null,
    !t.first_input && !t.last_output && !t.has_error
      ? el("div", { class: "io out" }, oneLine(t.name, 80)) : null,
    );
  });
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
  return el("div", { class: `msg ${known}`, dataset: m.seq === undefined ? null : { seq: m.seq } },
    el("div", { class: "role" }, label),
    m.content !== null && m.content !== undefined && m.content !== ""
      ? el("div", { class: "bubble" }, m.content) : null,
    calls.map((c) => el("div", { class: "call" },
      el("div", { class: "call-label" }, c.id ? `tool call · ${c.id}` : "tool call"),
      el("span", { class: "fn" }, c.name || c.function?.name || "?"),
      "(", argumentsText(c.arguments ?? c.function?.arguments), ")")),
  );
}

function renderChat(v, seg) {
  const byTurn = new Map();
  for (const m of seg.transcript) {
    if (!byTurn.has(m.turn_id)) byTurn.set(m.turn_id, []);
    byTurn.get(m.turn_id).push(m);
  }
  const sections = seg.branch.map((id) => {
    const t = v.byTurn.get(id) || {};
    const messages = byTurn.get(id) || [];
    return el("section", { class: "turn-sec", dataset: { turn: id } },
      el("div", { class: "sec-head" },
        el("span", {}, `Turn ${t.turn_index ?? "?"}`),
        el("span", {}, t.is_running ? "running" : duration(t.duration_ms)),
        el("span", { title: utcTime(t.start_time) }, oneLine(t.name, 60))),
      notesBar(v, id), // its thumbs, notes and annotations (annotate.js)
      messages.length ? messages.map(message) : t.has_error ? null
        : el("div", { class: "no-msgs" }, "No messages recorded in this turn."),
      t.has_error ? errorBlock(t) : null); // where the reply would be, after any it had
  });
  const orphans = byTurn.get(null) || [];
  if (orphans.length) sections.push(el("section", { class: "turn-sec" }, orphans.map(message)));
  return sections;
}

// -- loading what is in view ---------------------------------------------------------

// The segments whose wrapper in ``pane`` is within a screen of its view (binary search:
// the wrappers are in order).
function segsNear(v, pane, key) {
  const view = pane.getBoundingClientRect();
  const margin = view.height;
  const top = view.top - margin;
  const bottom = view.bottom + margin;
  const segs = v.segs;
  let lo = 0;
  let hi = segs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const node = segs[mid][key];
    if (node && node.getBoundingClientRect().bottom < top) lo = mid + 1;
    else hi = mid;
  }
  const out = [];
  for (let i = lo; i < segs.length; i++) {
    const node = segs[i][key];
    if (!node) continue;
    const r = node.getBoundingClientRect();
    if (r.top > bottom) break;
    if (r.bottom >= top) out.push(segs[i]);
  }
  return out;
}

function visibleSegs(v) {
  const near = new Set();
  if (!$("d-thread").hidden) {
    for (const s of segsNear(v, $("d-turns").parentElement, "turnEl")) near.add(s);
    for (const s of segsNear(v, $("d-chat"), "chatEl")) near.add(s);
  }
  return v.segs.filter((s) => near.has(s));
}

function ensureVisible() {
  const v = state.view;
  if (!v || $("drawer").hidden) return;
  for (const seg of visibleSegs(v)) {
    if (v.loads >= MAX_LOADS) break;
    if (seg.status === "pending" || (seg.status === "loaded" && seg.stale)) loadSeg(v, seg);
  }
}

async function loadSeg(v, seg) {
  const was = seg.status;
  seg.status = "loading";
  v.loads++;
  let got;
  try {
    got = await fetchSeg(v, seg, was === "loaded");
  } catch (err) {
    seg.status = was;
    v.loads--;
    showError(`Could not load turns of ${v.id}: ${err.message}`);
    return;
  }
  v.loads--;
  if (state.view !== v) return;
  if (got === null) { // unchanged after all
    seg.status = "loaded";
    seg.stale = false;
  } else {
    applySeg(v, seg, got);
  }
  ensureVisible();
}

// A page came: put it in, reshape the segments around it, draw what changed.
function applySeg(v, seg, got) {
  applyPage(v, seg, got);
  const before = new Set(v.segs);
  reshape(v);
  for (const s of v.segs) {
    if (!before.has(s) || s === seg || s.status === "pending") placeSeg(v, s);
  }
  renderHeader(v);
}

// The live refresh: ask for one page in view, conditionally. A 304: nothing changed.
async function refreshThread() {
  const v = state.view;
  if (!v || v.refreshing || v.loads) return;
  const probe = visibleSegs(v).find((s) => s.status === "loaded")
    || v.segs.find((s) => s.status === "loaded");
  if (!probe) return;
  v.refreshing = true;
  let got;
  try {
    got = await fetchSeg(v, probe, true, true);
  } catch (err) {
    showError(`Could not refresh thread ${v.id}: ${err.message}`);
    return;
  } finally {
    v.refreshing = false;
  }
  if (state.view !== v || got === null) {
    if (got === null) refreshDrawerTimes(v);
    return;
  }
  for (const s of v.segs) if (s !== probe && s.status === "loaded") s.stale = true;
  const chat = $("d-chat");
  const scroll = chat.scrollTop;
  applySeg(v, probe, got);
  chat.scrollTop = scroll;
  if (state.turn && !v.byTurn.has(state.turn) && probe.branch.length) state.turn = probe.branch[0];
  markTurn(state.turn, false);
  ensureVisible();
}

function refreshDrawerTimes(v) {
  if (v.thread) renderHeader(v);
}

// The segment holding the turn at ``index`` (1-based), loaded.
async function loadTurnAt(v, index) {
  const seg = v.segs.find((s) => s.start < index && index <= s.end);
  if (seg && seg.status !== "loaded") await loadSeg(v, seg);
}

async function goToTurn(id, index) {
  const v = state.view;
  if (!v) return;
  if (!v.byTurn.has(id) && index) await loadTurnAt(v, index);
  selectTurn(id);
}

// -- turn selection and chat sync -------------------------------------------------------

function markTurn(id, reveal = true) {
  state.turn = id;
  syncUrlSoon();
  for (const li of document.querySelectorAll("#d-turns .turn.active, #d-chat .turn-sec.active")) {
    li.classList.remove("active");
  }
  if (!id) return;
  const sel = `[data-turn="${CSS.escape(id)}"]`;
  const li = document.querySelector(`#d-turns .turn${sel}`);
  if (li) {
    li.classList.add("active");
    if (reveal) li.scrollIntoView({ block: "nearest" });
  }
  document.querySelector(`#d-chat .turn-sec${sel}`)?.classList.add("active");
}

function selectTurn(id, fromClick = false) {
  const v = state.view;
  if (!v) return;
  if (fromClick && v.byTurn.has(id) && !v.onBranch.has(id)) { // another branch: show it
    const index = v.byTurn.get(id).turn_index;
    openThread(v.id, id, true).then(() => goToTurn(id, index));
    return;
  }
  markTurn(id);
  const section = document.querySelector(`#d-chat .turn-sec[data-turn="${CSS.escape(id)}"]`);
  if (section) {
    state.ignoreScrollUntil = Date.now() + 400;
    section.scrollIntoView({ block: "start" });
  }
}

// The branch's turns of the loaded pages, in order.
function loadedBranch(v) {
  return v.segs.filter((s) => s.status === "loaded" || s.branch)
    .flatMap((s) => (s.branch || []).map((id) => ({ id, seg: s })));
}

async function stepTurn(delta) {
  const v = state.view;
  if (!v) return;
  for (let tries = 0; tries < 50; tries++) {
    const order = loadedBranch(v);
    const at = order.findIndex((o) => o.id === state.turn);
    const next = at < 0 ? 0 : at + delta;
    if (next >= 0 && next < order.length) {
      selectTurn(order[next].id);
      return;
    }
    // past the pages loaded: load the next one that way, if there is one
    const from = at < 0 ? 0 : v.segs.indexOf(order[at].seg);
    let i = from + delta;
    while (i >= 0 && i < v.segs.length && v.segs[i].status === "loaded") i += delta;
    if (i < 0 || i >= v.segs.length) return;
    await loadSeg(v, v.segs[i]);
    if (state.view !== v || v.segs[i]?.status !== "loaded") return;
  }
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
    ensureVisible();
    if (Date.now() < state.ignoreScrollUntil) return;
    const id = currentSection();
    if (id && id !== state.turn) markTurn(id);
  });
}

let turnsScrollPending = false;
function onTurnsScroll() {
  if (turnsScrollPending) return;
  turnsScrollPending = true;
  requestAnimationFrame(() => { turnsScrollPending = false; ensureVisible(); });
}

// -- a turn's span tree ---------------------------------------------------------------

function showThreadView() {
  $("d-spans").hidden = true;
  $("d-thread").hidden = false;
  state.spansOf = null;
  ensureVisible();
  syncUrlSoon();
}

async function openSpans(turnId) {
  const v = state.view;
  if (!v) return;
  let res;
  try {
    res = await api(`/threads/${encodeURIComponent(v.id)}/turns/` +
                    `${encodeURIComponent(turnId)}/spans`);
  } catch (err) {
    showError(`Could not load the spans: ${err.message}`);
    return;
  }
  state.spansOf = turnId;
  markTurn(turnId);
  const turn = v.byTurn.get(turnId) || {};
  $("s-title").textContent = `Turn ${turn.turn_index ?? "?"} · ${res.spans.length} spans`;
  renderSpanTree(res.spans, v.id, turnId);
  $("d-thread").hidden = true;
  $("d-spans").hidden = false;
  $("s-back").focus();
  syncUrlSoon();
}

function renderSpanTree(spans, threadId, turnId) {
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
      onclick: () => toggleDetail(row, s),
      onkeydown: (e) => { if (e.key === "Enter") toggleDetail(row, s); },
    },
    el("div", { class: "span-name", title: s.name, style: { paddingLeft: `${depth * 16}px` } },
      depth ? el("span", { class: "indent" }, "└ ") : null,
      isError ? el("span", { class: "err" }, "! ") : null,
      s.name || "(unnamed)",
      s.llm_call_span_id ? el("span", { class: "badge llm", title: "an LLM call" }, "LLM") : null,
      el("span", { class: "svc" }, s.service_name || "")),
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
  state.spanTree = { spans, threadId, turnId }; // what a span's detail reads
  $("s-tree").replaceChildren(...rows);
}

// A span's detail (explain.js) below its row; a second click folds it.
function toggleDetail(row, s) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("attrs")) {
    next.remove();
    row.classList.remove("open");
    row.setAttribute("aria-expanded", "false");
    return;
  }
  const tree = state.spanTree;
  row.after(spanDetail(s, tree.spans, tree.threadId, tree.turnId));
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
  if (onFindKey(event)) return; // /, j, k (find.js)
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
      const textual = ["thread_id", "first_input", "last_output", "user_id", "project"]
        .includes(field);
      state.sort = state.sort.field === field
        ? { field, dir: state.sort.dir === "desc" ? "asc" : "desc" }
        : { field, dir: textual ? "asc" : "desc" };
      state.offset = 0;
      loadList();
      syncUrl();
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
    typing = setTimeout(() => {
      state.q = $("q").value.trim(); state.offset = 0; loadList(); syncUrl();
    }, 200);
  });
  $("window").addEventListener("change", () => {
    state.windowSecs = $("window").value; state.offset = 0; loadList(); syncUrl();
  });
  $("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit); loadList(); syncUrl();
  });
  $("next").addEventListener("click", () => {
    state.offset += state.limit; loadList(); syncUrl();
  });
  $("d-close").addEventListener("click", closeDrawer);
  $("s-back").addEventListener("click", showThreadView);
  $("d-chat").addEventListener("scroll", onChatScroll, { passive: true });
  $("d-turns").parentElement.addEventListener("scroll", onTurnsScroll, { passive: true });
  document.addEventListener("keydown", onKey);
  const open = initFind(); // the state the URL holds (find.js)
  loadList();
  reopen(open);
  setInterval(() => {
    if (!$("live").checked || document.hidden) return;
    loadList(true);
    if (state.selected && state.spansOf === null) refreshThread();
  }, 3000);
}

document.addEventListener("DOMContentLoaded", init);
