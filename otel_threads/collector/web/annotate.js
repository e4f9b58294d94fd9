// otel-threads web page: annotations (loaded before app.js, whose helpers el(), $(),
// authHeaders(), askToken(), loadSeg(), loadList(), utcTime() and oneLine() it uses when
// called).
// - beside each turn of the chat, and for the whole thread under the drawer's head:
//   thumbs up / down, a note, and the annotations already made (name, label, score,
//   explanation, source, author), with a delete (×) on those made through the API;
// - a mark of each turn's annotations in the turns list, the list's annotations column,
//   and an "ended" / "reopened" mark of a thread (when the threads rows carry them).
//
// Writes: POST /threads/{id}/annotations and DELETE /annotations/{id}, as JSON, with
// the token when the page has one (a 401 asks for it, like the reads). The collector
// refuses them from any web page but its own. After a write the thread is read again:
// its ETag changed.
//
// Thumbs (name "thumbs"; label "up", score 1 or label "down", score 0) are one shared
// vote per turn, and one for the whole thread: the page does not know who is looking,
// so the vote is the thumbs of source 'api' (made here, by the command line or by a
// client). Clicking 👍 when the vote is up takes it back (deletes them); otherwise it
// records "up", then deletes the other ones (a "down" becomes "up"). 👎 likewise.
// Thumbs from evaluators or from the app itself (over OTLP) are shown, never touched.
//
// Safety, as in app.js: every text from the data goes in through el(), as text.
"use strict";

const THUMBS = {
  up: { label: "up", score: 1, icon: "👍", title: "Thumbs up" },
  down: { label: "down", score: 0, icon: "👎", title: "Thumbs down" },
};

// Notes being written, by thread and turn (draftKey): {open, text, focused}. A refresh
// redraws the chat; what is typed survives it. And why the last write there failed.
const drafts = new Map();
const failures = new Map();

function draftKey(v, turnId) {
  return `${v.id}\n${turnId || ""}`;
}

// -- the data: each page's annotations ------------------------------------------------

// A page came (app.js applyPage): the annotations of its turns, and of the thread.
function takeNotes(v, seg, res) {
  const all = res.annotations || [];
  if (!v.turnNotes) v.turnNotes = new Map();
  for (const t of res.turns) v.turnNotes.set(t.turn_id, []);
  v.threadNotes = [];
  for (const a of all) {
    if (!a.turn_id) v.threadNotes.push(a);
    else if (v.turnNotes.has(a.turn_id)) v.turnNotes.get(a.turn_id).push(a);
    else v.turnNotes.set(a.turn_id, [a]);
  }
}

function notesOf(v, turnId) {
  return (turnId ? v.turnNotes?.get(turnId) : v.threadNotes) || [];
}

// The shared vote: the thumbs made through the API, and which way they say.
function vote(notes) {
  const mine = notes.filter((a) => a.name === "thumbs" && a.source === "api");
  const last = mine[mine.length - 1];
  return { mine, way: last && (last.label === "up" || last.label === "down") ? last.label : null };
}

// -- writes ---------------------------------------------------------------------------

// method path [body] -> the answer's JSON; an Error with .status when it fails.
async function send(method, path, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = authHeaders({ Accept: "application/json" });
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new Error("cannot reach the collector");
    }
    if (response.status === 401 && attempt === 0 && askToken()) continue;
    const out = await response.json().catch(() => ({}));
    if (!response.ok) {
      const why = response.status === 401 ? "the collector wants its token (--token)"
        : out.error || response.statusText;
      const error = new Error(`HTTP ${response.status}: ${why}`);
      error.status = response.status;
      throw error;
    }
    return out;
  }
  throw new Error("the collector wants its token (--token)");
}

function annotate(v, turnId, fields) {
  const body = { ...fields };
  if (turnId) body.turn_id = turnId;
  return send("POST", `/threads/${encodeURIComponent(v.id)}/annotations`, body);
}

function unannotate(id) {
  return send("DELETE", `/annotations/${encodeURIComponent(id)}`);
}

// Read the thread again after a write: the page holding the turn (or, for the thread,
// one in view) now; the other loaded pages when they come into view.
async function reread(v, turnId) {
  const seg = (turnId && v.segs.find((s) => (s.turns || []).some((t) => t.turn_id === turnId)))
    || visibleSegs(v).find((s) => s.status === "loaded")
    || v.segs.find((s) => s.status === "loaded");
  for (const s of v.segs) if (s !== seg && s.status === "loaded") s.stale = true;
  if (seg && seg.status === "loaded") await loadSeg(v, seg);
  loadList(); // the annotations column
}

// Run a write from a notes bar: its buttons off meanwhile, and until the thread has
// been read again (a second click acts on what the first one did). When it fails, one
// line saying why (kept through redraws until the next write there); a 404 reads the
// thread again too (what was clicked is gone).
async function write(v, turnId, box, what, job) {
  const key = draftKey(v, turnId);
  failures.delete(key);
  box.querySelector(".note-err").textContent = "";
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  let status = 200;
  try {
    await job();
  } catch (e) {
    status = e.status || 0;
    failures.set(key, oneLine(`${what}: ${e.message}`, 300));
    box.querySelector(".note-err").textContent = failures.get(key);
  }
  try {
    if (state.view === v && (status === 200 || status === 404)) await reread(v, turnId);
  } finally {
    for (const b of box.querySelectorAll("button")) b.disabled = false;
  }
}

async function thumb(v, turnId, way, box) {
  const { mine, way: now } = vote(notesOf(v, turnId));
  await write(v, turnId, box, "Not saved", async () => {
    if (now !== way) {
      const { label, score } = THUMBS[way];
      await annotate(v, turnId, { name: "thumbs", label, score });
    }
    for (const a of mine) await unannotate(a.annotation_id);
  });
}

// -- drawing ----------------------------------------------------------------------------

function noteText(a) {
  const parts = [];
  if (a.label !== null && a.label !== undefined) parts.push(a.label);
  if (a.score !== null && a.score !== undefined) parts.push(`score ${a.score}`);
  return parts.join(" · ");
}

function noteItem(v, turnId, a, box) {
  const icon = a.name === "thumbs" && THUMBS[a.label] ? THUMBS[a.label].icon + " " : "";
  const by = a.author ? `${a.source} · ${a.author}` : a.source;
  return el("li", {
    class: `note-item src-${a.source === "api" ? "api" : "other"}`,
    dataset: { id: a.annotation_id, name: a.name }, title: utcTime(a.created_at),
  },
  el("span", { class: "note-name" }, icon, a.name),
  noteText(a) ? el("span", { class: "note-val" }, noteText(a)) : null,
  a.explanation ? el("span", { class: "note-expl" }, a.explanation) : null,
  el("span", { class: "note-src" }, by),
  a.source === "api" ? el("button", {
    type: "button", class: "note-x", "aria-label": `Delete this ${a.name}`, title: "Delete",
    onclick: () => write(v, turnId, box, "Not deleted", () => unannotate(a.annotation_id)),
  }, "×") : null);
}

function noteForm(v, turnId, box, key) {
  const draft = drafts.get(key) || { open: false, text: "", focused: false };
  const text = el("textarea", {
    rows: 2, maxlength: 10000, placeholder: "A note", "aria-label": "Note",
    oninput: () => { draft.text = text.value; drafts.set(key, draft); },
    onfocus: () => { draft.focused = true; },
    onblur: () => { if (text.isConnected) draft.focused = false; },
    onkeydown: (e) => { // typing is not the page's keys (/, j, k, arrows, Esc)
      e.stopPropagation();
      if (e.key === "Escape") close();
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    },
  });
  text.value = draft.text;
  const form = el("form", {
    class: "note-form", hidden: !draft.open,
    onsubmit: (e) => {
      e.preventDefault();
      const note = text.value.trim();
      if (!note) return;
      write(v, turnId, box, "Not saved", async () => {
        await annotate(v, turnId, { name: "note", explanation: note });
        drafts.delete(key);
      });
    },
  },
  text,
  el("button", { type: "submit" }, "Save"),
  el("button", { type: "button", onclick: () => close() }, "Cancel"));
  function close() {
    drafts.delete(key);
    form.hidden = true;
  }
  if (draft.open && draft.focused) requestAnimationFrame(() => text.isConnected && text.focus());
  return form;
}

// The annotations of a turn (turnId) or of the thread (null), with their controls.
function notesBar(v, turnId) {
  const notes = notesOf(v, turnId);
  const key = draftKey(v, turnId);
  const { way } = vote(notes);
  const box = el("div", { class: "notes", dataset: { of: turnId ? "turn" : "thread" } });
  const form = noteForm(v, turnId, box, key);
  const what = turnId ? "this turn" : "the whole thread";
  const thumbButton = (w) => el("button", {
    type: "button", class: `thumb ${w}`, "aria-pressed": way === w ? "true" : "false",
    title: `${THUMBS[w].title} for ${what}${way === w ? " (again: take it back)" : ""}`,
    onclick: (e) => { e.stopPropagation(); thumb(v, turnId, w, box); },
  }, `${THUMBS[w].icon} ${w}`); // the word too: not every system has the emoji
  box.append(
    el("div", { class: "note-tools" },
      turnId ? null : el("span", { class: "note-lead" }, "Thread"),
      thumbButton("up"), thumbButton("down"),
      el("button", {
        type: "button", class: "note-btn", title: `Write a note on ${what}`,
        onclick: () => {
          drafts.set(key, { ...(drafts.get(key) || { text: "" }), open: true, focused: true });
          form.hidden = false;
          form.querySelector("textarea").focus();
        },
      }, "✎ note"),
      el("span", { class: "note-err", role: "alert" }, failures.get(key) || "")),
    form);
  if (notes.length) {
    box.append(el("ul", { class: "note-list" }, notes.map((a) => noteItem(v, turnId, a, box))));
  }
  return box;
}

// The thread's own annotations, under the drawer's head (app.js renderHeader). Drawn
// again only when they changed, so a note being written there keeps its focus.
const threadNotesDrawn = { view: null, key: "" };
function renderThreadNotes(v) {
  const box = $("d-notes");
  const key = JSON.stringify([v.threadNotes || [], failures.get(draftKey(v, null))]);
  if (threadNotesDrawn.view === v && threadNotesDrawn.key === key && box.firstChild) return;
  Object.assign(threadNotesDrawn, { view: v, key });
  box.replaceChildren(notesBar(v, null));
}

// A turn's annotations in the turns list: "👍 1 👎 2 ✎ 3" (✎: the others).
function notesMark(v, turnId) {
  const notes = notesOf(v, turnId);
  if (!notes.length) return null;
  const count = (label) => notes.filter((a) => a.name === "thumbs" && a.label === label).length;
  const up = count("up");
  const down = count("down");
  const rest = notes.length - up - down;
  return el("span", { class: "badge notes-mark", title: `${notes.length} annotations` },
    [up ? `👍 ${up}` : "", down ? `👎 ${down}` : "", rest ? `✎ ${rest}` : ""]
      .filter(Boolean).join(" "));
}

// The list's annotations column.
function notesCell(t) {
  const n = t.annotation_count || 0;
  return el("td", { class: "num" + (n ? "" : " dim"), title: `${n} annotations` }, number(n));
}

// "ended" / "reopened": when the threads rows say so (harmless when they do not).
function endMark(t) {
  if (t.ended === true) {
    return el("span", { class: "badge ended", title: `ended ${utcTime(t.ended_at)}` }, "ended");
  }
  if (t.reopened_at) {
    return el("span", { class: "badge reopened", title: `reopened ${utcTime(t.reopened_at)}` },
      "reopened");
  }
  return null;
}
