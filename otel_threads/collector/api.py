"""The API listener: the threads query, read-only SQL, /healthz, /metrics (rendered
by collector.metrics), the web page and what it reads (a turn's spans, an LLM span's
messages), and annotations (written by collector.api_writes).

The handler reads through a `otel_threads.reads_backend.ReadsBackend`, not the
collector: the collector's file (`otel_threads.store.reads.Reads`: cursors of their
own, next to the writer), or ClickHouse (`otel-threads serve`). On a file, `/sql` (JSON
rows, cut to a size) and `/arrow` (an Arrow IPC stream, whole or refused; ``params``
for its ``?``) run one statement in a READ ONLY transaction on a database whose
external access (files, ATTACH, extensions) is switched off: the database refuses
writes, we do not parse SQL to guess them.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otel_threads.client import ARROW_STREAM
from otel_threads.collector import api_writes
from otel_threads.collector.httpbase import BaseHandler
from otel_threads.filters import ThreadFilter
from otel_threads.json_out import dumps
from otel_threads.paging import TRANSCRIPT_LIMIT, TURN_LIMIT
from otel_threads.query import ThreadsQueryReq
from otel_threads.reads_backend import ReadsBackend
from otel_threads.store.errors import StoreClosed
from otel_threads.store.readonly_sql import SQL_CONCURRENCY, SQL_QUEUE_S
from otel_threads.versions import etag

__all__ = ["ApiHandler"]


#: Longest a read waits for the derived views to catch up with what was acknowledged
#: (the default; a read may ask for less with ?wait=SECONDS, 0 for what is derived now).
READ_SYNC_S = 2.0


#: The web page: static files shipped in otel_threads/collector/web, served as they are.
WEB_DIR = Path(__file__).resolve().parent / "web"
_WEB_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: Nothing on the page runs but its own script: text from spans can never execute.
WEB_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _web_files() -> dict[str, Path]:
    """URL path -> file: / is index.html, the others under /static/."""
    files = (
        {
            f"/static/{p.name}": p
            for p in WEB_DIR.iterdir()
            if p.is_file() and p.suffix in _WEB_TYPES
        }
        if WEB_DIR.is_dir()
        else {}
    )
    if "/static/index.html" in files:
        files["/"] = files.pop("/static/index.html")
    return files


def _wait_s(query: dict[str, list[str]]) -> float:
    """The ``wait`` parameter (taken out of ``query``): seconds a read may wait for
    derivation to catch up with what was acknowledged, 0 to `READ_SYNC_S` (the
    default); ValueError, one line."""
    values = query.pop("wait", None)
    if not values:
        return READ_SYNC_S
    try:
        wait_s = float(values[-1])
    except ValueError:
        wait_s = -1.0
    if not 0 <= wait_s <= READ_SYNC_S:  # (NaN too)
        raise ValueError(
            f"wait must be a number of seconds from 0 to {READ_SYNC_S:g}, got {values[-1][:40]!r}"
        )
    return wait_s


def _page_query(query: dict[str, list[str]]) -> tuple[ThreadsQueryReq, list[tuple[str, str]]]:
    """GET /ui/threads parameters: limit, offset, sort=FIELD:asc|desc, after, before, q
    (in the thread id), and the threads filters (`ThreadFilter.from_params`)."""
    rest = dict(query)  # (the ETag is of every parameter)
    found = ThreadFilter.from_params(rest)
    unknown = set(rest) - {"limit", "offset", "sort", "after", "before", "q"}
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}")

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    def integer(name: str, default: int) -> int:
        raw = one(name)
        try:
            return default if raw is None else int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw!r}") from None

    field, _, direction = (one("sort") or "last_updated:desc").partition(":")
    req = ThreadsQueryReq(
        limit=integer("limit", 50),
        offset=integer("offset", 0),
        sortable_datetime_after=one("after") or None,
        sortable_datetime_before=one("before") or None,
        thread_id_contains=one("q") or None,
        filter=found,
    )
    return req, [(field, direction or "desc")]


#: What GET /threads/{id} takes, with defaults (None: not given).
_THREAD_PARAMS = {
    "through_turn": None,
    "turn_offset": 0,
    "turn_limit": TURN_LIMIT,
    "transcript_after": None,
    "transcript_limit": TRANSCRIPT_LIMIT,
}


def _thread_query(query: dict[str, list[str]]) -> dict[str, Any]:
    """GET /threads/{id} parameters (see `query_thread_page`); ValueError, one line."""
    unknown = set(query) - set(_THREAD_PARAMS)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)}; GET /threads/{{id}} takes "
            f"{', '.join(_THREAD_PARAMS)}"
        )
    out = dict(_THREAD_PARAMS)
    for name, values in query.items():
        raw = values[-1]
        if name == "through_turn":
            out[name] = raw
            continue
        try:
            out[name] = int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw[:40]!r}") from None
    return out


def _not_modified(header: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names ``tag`` (or is *)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or tag in tags


class ApiHandler(BaseHandler):
    # set by HttpListener
    reads: ReadsBackend
    sql_slots: threading.BoundedSemaphore  # /sql statements running at once
    metrics: Callable[[], str]  # the /metrics text (not a method: a partial)
    open_paths = frozenset({"/healthz"})
    web_files: dict[str, Path] = _web_files()

    def authorized(self) -> bool:
        # the page itself holds no data (it asks for the token, then calls the API)
        if self.path.split("?", 1)[0] in self.web_files:
            return True
        return super().authorized()

    def _web(self, path: str) -> None:
        file = self.web_files[path]
        self.reply(200, file.read_bytes(), _WEB_TYPES[file.suffix], WEB_HEADERS)

    def _send(self, status: int, payload: Any, tag: str | None = None) -> None:
        body = dumps(payload).encode()  # times in UTC with a Z (otel_threads.json_out)
        # an answer with an ETag: caches revalidate it (If-None-Match) before reuse
        headers = {"ETag": tag, "Cache-Control": "no-cache"} if tag else None
        self.reply(status, body, "application/json", headers)

    def _not_modified(self, tag: str) -> None:
        """304: what the client has (its If-None-Match) is current; no body."""
        self.reply(304, b"", "application/json", {"ETag": tag, "Cache-Control": "no-cache"})

    def _json_body(self) -> tuple[bool, Any]:
        """(True, parsed body), or (False, None) after replying with the error. Only an
        application/json body: a web page cannot send one to another site without asking
        first (CORS), and this API answers no such question."""
        media = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            self._send(415, {"error": f"send the body as application/json, not {media!r}"})
            return False, None
        body = self.read_body(1 << 20)
        if body is None:
            return False, None
        try:
            return True, json.loads(body or b"null")
        except ValueError as exc:
            self._send(400, {"error": f"the body is not JSON: {exc}"})
            return False, None

    def do_GET(self) -> None:
        self._closing_is_503(self._get)

    def do_POST(self) -> None:
        self._closing_is_503(self._post)

    def _closing_is_503(self, handle: Any) -> None:
        """A read that meets the store closing (the collector is stopping) is a 503."""
        try:
            handle()
        except StoreClosed as exc:
            self.reply_json(503, {"error": str(exc)}, {"Retry-After": "1"})

    def _catch_up(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` (`_wait_s`) for derivation to catch up with what was
        acknowledged (read your writes; at once where nothing derives here)."""
        if wait_s > 0:
            self.reads.sync(wait_s)

    def _get(self) -> None:
        if not self.authorized():
            return
        path = self.path.split("?", 1)[0]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        reads = self.reads
        if path in self.web_files:
            self._web(path)
        elif path == "/healthz":  # open without the token: says nothing more
            fault = reads.fault
            if fault is None:
                self._send(200, {"status": "ok"})
            else:  # what kind of fault, not where the file is (the log says it all)
                self._send(503, {"status": "unavailable", "store": fault.kind})
        elif path == "/ui/threads":
            try:
                wait_s = _wait_s(query)
                req, sort = _page_query(query)
                self._catch_up(wait_s)
                version = reads.threads_version()  # before the read: never newer than it
                tag = etag(version, sorted(query.items())) if version else None
                if tag and _not_modified(self.headers.get("If-None-Match"), tag):
                    self._not_modified(tag)
                    return
                res = reads.threads(req, sort)
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"threads": res.threads, "total": res.total}, tag)
        elif (
            path.startswith("/threads/")
            and "/turns/" in path
            and "/spans/" in path
            and path.endswith("/messages")
        ):
            # /threads/{thread}/turns/{turn}/spans/{span}/messages: an LLM span's call
            head, _, span_id = path[len("/threads/") : -len("/messages")].rpartition("/spans/")
            thread_id, _, turn_id = head.rpartition("/turns/")
            thread_id, turn_id, span_id = (
                urllib.parse.unquote(p) for p in (thread_id, turn_id, span_id)
            )
            try:
                self._catch_up(_wait_s(query))
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            answer = reads.span_messages(thread_id, turn_id, span_id)
            if answer is None:
                self._send(
                    404,
                    {"error": f"no span {span_id!r} in turn {turn_id!r} of thread {thread_id!r}"},
                )
            else:
                self._send(200, answer)
        elif path.startswith("/threads/") and "/turns/" in path and path.endswith("/spans"):
            thread_id, _, turn_id = path[len("/threads/") : -len("/spans")].rpartition("/turns/")
            thread_id, turn_id = urllib.parse.unquote(thread_id), urllib.parse.unquote(turn_id)
            try:
                self._catch_up(_wait_s(query))
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            spans = reads.turn_spans(thread_id, turn_id)
            if spans is None:
                self._send(404, {"error": f"no turn {turn_id!r} in thread {thread_id!r}"})
            else:
                self._send(200, {"thread_id": thread_id, "turn_id": turn_id, "spans": spans})
        elif path == "/metrics":
            self.reply(200, self.metrics().encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path.startswith("/threads/") and len(path) > len("/threads/"):
            thread_id = urllib.parse.unquote(path[len("/threads/") :])
            try:
                wait_s = _wait_s(query)
                params = _thread_query(query)
                self._catch_up(wait_s)
                version = reads.thread_version(thread_id)  # before the read
                tag = etag(version, thread_id, sorted(params.items())) if version else None
                if tag and _not_modified(self.headers.get("If-None-Match"), tag):
                    self._not_modified(tag)
                    return
                detail = reads.thread_page(thread_id, params.pop("through_turn"), **params)
            except (ValueError, TypeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            if detail is None:
                self._send(404, {"error": f"no thread {thread_id!r}"})
            else:
                detail.version = version
                self._send(200, detail, tag)
        else:
            self._send(404, {"error": f"no such endpoint {path}"})

    def do_DELETE(self) -> None:
        self._closing_is_503(self._write)

    def _write(self) -> None:
        if self.authorized():
            api_writes.handle(self)

    def _post(self) -> None:
        if not self.authorized():
            return
        path = self.path.split("?", 1)[0]
        if api_writes.route("POST", path) is not None:
            self._write()
            return
        if path not in ("/threads/query", "/sql", "/arrow"):
            self._send(404, {"error": f"no such endpoint {path}"})
            return
        ok, body = self._json_body()
        if not ok:
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            wait_s = _wait_s(query)
            if query:
                raise ValueError(f"unknown parameter(s) {sorted(query)}; {path} takes wait")
            self._catch_up(wait_s)
            if path == "/threads/query":
                res = self.reads.threads(ThreadsQueryReq.from_json(body))
                self._send(200, {"threads": res.threads, "total": res.total})
                return
            if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
                raise ValueError('send {"sql": "SELECT ..."}')
            unknown = sorted(set(body) - {"sql", "params"})
            if unknown or (path == "/sql" and "params" in body):
                raise ValueError(
                    f"unknown field(s) {unknown or ['params']}; {path} takes sql"
                    + (" and params" if path == "/arrow" else "")
                )
            if not self.sql_slots.acquire(timeout=SQL_QUEUE_S):
                self.reply_json(
                    503,
                    {"error": f"{SQL_CONCURRENCY} /sql statements are running; retry later"},
                    {"Retry-After": "1"},
                )
                return
            try:
                if path == "/arrow":
                    arrow = self.reads.arrow(body["sql"], body.get("params"))
                else:
                    payload = self.reads.sql(body["sql"])
            finally:
                self.sql_slots.release()
        except (ValueError, TypeError) as exc:
            self._send(400, {"error": str(exc)})
            return
        if path == "/arrow":
            self.reply(200, arrow, ARROW_STREAM)
        else:
            self._send(200, payload)
