// otel-threads web page: finding threads. The search box and its role, filter chips
// (the threads filters: GET /ui/threads takes them as URL parameters, the CLI's flags
// without their dashes), every state of the page in its URL (filters, sort, page, the
// open thread, its turn, the spans view) so a link reopens it, and the keys: / to
// search, j and k for the next and previous thread while one is open.
//
// Safety: as in app.js, data goes into the page as text nodes, never as HTML.
"use strict";

// The filters a chip can hold: URL parameter -> [label, what to type, how to show it].
const FILTERS = {
  errors: ["Errors", null, (v) => (v === "true" ? "has errors" : "no errors")],
  tool: ["Tool", "tool name", (v) => `tool: ${v}`],
  model: ["Model", "model (* wildcards: gpt-4o*)", (v) => `model: ${v}`],
  user: ["User", "user id", (v) => `user: ${v}`],
  project: ["Project", "project", (v) => `project: ${v}`],
  service: ["Service", "service name", (v) => `service: ${v}`],
  min_turns: ["Turns at least", "number of turns", (v) => `turns ≥ ${v}`],
  max_turns: ["Turns at most", "number of turns", (v) => `turns ≤ ${v}`],
  min_cost: ["Cost at least", "USD", (v) => `cost ≥ $${v}`],
  max_cost: ["Cost at most", "USD", (v) => `cost ≤ $${v}`],
  attr: ["Attribute", "key=value", (v) => `${v}`],
  q: ["Thread id contains", "text", (v) => `id ∋ ${v}`],
};
// The page's own parameters besides the filters.
const VIEW_PARAMS = ["sort", "offset", "window", "thread", "through", "turn", "spans"];

// find.filters: [param, value] pairs, in the order added (attr may repeat).
const find = { search: "", role: "", filters: [], pending: null };

function findParams(p) {
  if (find.search) p.set("search", find.search);
  if (find.search && find.role) p.set("role", find.role);
  for (const [name, value] of find.filters) p.append(name, value);
  return p;
}

function hasFilters() {
  return Boolean(find.search) || find.filters.length > 0;
}

function setFilter(name, value) {
  if (name !== "attr") find.filters = find.filters.filter(([n]) => n !== name);
  if (!find.filters.some(([n, v]) => n === name && v === value)) find.filters.push([name, value]);
}

function renderChips() {
  const box = $("chips");
  const chips = find.filters.map(([name, value]) => el("span", { class: "chip" },
    FILTERS[name][2](value),
    el("button", {
      type: "button", class: "chip-x", "aria-label": `Remove ${FILTERS[name][2](value)}`,
      onclick: () => {
        find.filters = find.filters.filter(([n, v]) => !(n === name && v === value));
        filtersChanged();
      },
    }, "✕")));
  box.replaceChildren(...chips);
  if (hasFilters()) {
    box.append(el("button", { type: "button", class: "link", onclick: clearFilters },
      "Clear filters"));
  }
  box.hidden = !hasFilters();
}

function clearFilters() {
  find.search = "";
  find.role = "";
  find.filters = [];
  $("search").value = "";
  $("role").value = "";
  filtersChanged();
}

function filtersChanged() {
  state.offset = 0;
  renderChips();
  loadList();
  syncUrl();
}

// The empty list: nothing stored yet, or nothing that matches (with a way out).
function renderEmpty(shown) {
  const empty = $("empty");
  empty.hidden = shown > 0 || state.total > 0;
  if (empty.hidden) return;
  if (hasFilters() || state.q || state.windowSecs) {
    empty.replaceChildren("No threads match these filters. ",
      el("button", { type: "button", class: "link", onclick: () => {
        state.q = "";
        state.windowSecs = "";
        $("q").value = "";
        $("window").value = "";
        clearFilters();
      } }, "Clear filters"));
  } else {
    empty.replaceChildren(
      "No threads yet. Point an app's OTEL_EXPORTER_OTLP_ENDPOINT at this collector.");
  }
}

// -- adding a filter ----------------------------------------------------------------------

function onAddFilter() {
  const select = $("add-filter");
  const name = select.value;
  select.value = "";
  if (!name) return;
  if (name === "errors" || name === "no-errors") {
    setFilter("errors", name === "errors" ? "true" : "false");
    filtersChanged();
    return;
  }
  find.pending = name;
  $("filter-label").textContent = FILTERS[name][0];
  const input = $("filter-value");
  input.placeholder = FILTERS[name][1];
  input.value = "";
  $("filter-form").hidden = false;
  input.focus();
}

function onFilterSubmit(event) {
  event.preventDefault();
  const value = $("filter-value").value.trim();
  const name = find.pending;
  if (name && value) {
    if (name === "attr" && !/^[^=]+=/.test(value)) {
      showError("An attribute filter is key=value, e.g. tenant=acme");
      return;
    }
    if (name === "q") { state.q = value; $("q").value = value; } else setFilter(name, value);
    showError("");
  }
  cancelFilter();
  if (name && value) filtersChanged();
}

function cancelFilter() {
  find.pending = null;
  $("filter-form").hidden = true;
}

// -- the URL: every state of the page -------------------------------------------------------

function syncUrl() {
  const p = findParams(new URLSearchParams());
  if (state.q) p.set("q", state.q);
  if (state.windowSecs) p.set("window", state.windowSecs);
  if (state.sort.field !== "last_updated" || state.sort.dir !== "desc") {
    p.set("sort", `${state.sort.field}:${state.sort.dir}`);
  }
  if (state.offset) p.set("offset", state.offset);
  if (state.selected) {
    p.set("thread", state.selected);
    if (state.through) p.set("through", state.through);
    if (state.spansOf) p.set("spans", state.spansOf);
    else if (state.turn) p.set("turn", state.turn);
  }
  const query = p.toString();
  const url = `${location.pathname}${query ? `?${query}` : ""}`;
  if (url !== `${location.pathname}${location.search}`) history.replaceState(null, "", url);
}

// State from the URL (at load); returns what to open: {thread, through, turn, spans}.
function readUrl() {
  const p = new URLSearchParams(location.search);
  find.search = p.get("search") || "";
  find.role = p.get("role") || "";
  find.filters = [];
  for (const [name, value] of p) {
    if (!Object.hasOwn(FILTERS, name) || name === "q" || !value) continue;
    const v = name === "errors" ? String(["true", "1", "yes"].includes(value.toLowerCase())) : value;
    find.filters.push([name, v]);
  }
  state.q = p.get("q") || "";
  state.windowSecs = p.get("window") || "";
  const [field, dir] = (p.get("sort") || "").split(":");
  if (field) state.sort = { field, dir: dir === "asc" ? "asc" : "desc" };
  state.offset = Math.max(0, Number.parseInt(p.get("offset") || "0", 10) || 0);
  $("search").value = find.search;
  $("role").value = find.role;
  $("q").value = state.q;
  $("window").value = state.windowSecs;
  renderChips();
  return {
    thread: p.get("thread"), through: p.get("through"), turn: p.get("turn"),
    spans: p.get("spans"),
  };
}

async function reopen(open) {
  if (!open.thread) return;
  await openThread(open.thread, open.through || null);
  if (state.selected !== open.thread || !state.view) return;
  const turnId = open.spans || open.turn;
  const turn = turnId && state.view.byTurn.get(turnId);
  if (turnId) await goToTurn(turnId, turn ? turn.turn_index : null);
  if (open.spans) await openSpans(open.spans);
  syncUrl();
}

// -- keys -------------------------------------------------------------------------------------

// The thread next to the open one in the list (delta +1 or -1), opened.
function stepThread(delta) {
  const rows = [...document.querySelectorAll("#threads tbody tr")];
  const at = rows.findIndex((r) => r.dataset.id === state.selected);
  const next = rows[at < 0 ? 0 : at + delta];
  if (!next) return;
  next.scrollIntoView({ block: "nearest" });
  openThread(next.dataset.id).then(syncUrl);
}

// Keys of the list and search: / to search; j / k for the next and previous thread.
function onFindKey(event) {
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "SELECT")) return false;
  if (event.ctrlKey || event.metaKey || event.altKey) return false;
  if (event.key === "/") {
    event.preventDefault();
    $("search").focus();
    $("search").select();
    return true;
  }
  if ((event.key === "j" || event.key === "k") && state.selected) {
    event.preventDefault();
    stepThread(event.key === "j" ? 1 : -1);
    return true;
  }
  return false;
}

let searching = null;
function initFind() {
  $("search").addEventListener("input", () => {
    clearTimeout(searching);
    searching = setTimeout(() => {
      find.search = $("search").value.trim();
      filtersChanged();
    }, 250);
  });
  $("role").addEventListener("change", () => {
    find.role = $("role").value;
    if (find.search) filtersChanged();
  });
  $("add-filter").addEventListener("change", onAddFilter);
  $("filter-form").addEventListener("submit", onFilterSubmit);
  $("filter-cancel").addEventListener("click", cancelFilter);
  $("filter-value").addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); cancelFilter(); }
  });
  return readUrl();
}
