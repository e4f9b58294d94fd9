"""`ThreadsClient`: the threads query against a DuckDB file, a collector's API or ClickHouse.

    client = ThreadsClient("otel-threads.duckdb")     # or "http://127.0.0.1:4319"
    client = ThreadsClient("clickhouse://host:8123/otel")   # or "chdb:///path/to/folder"
    res = client.threads_query(ThreadsQueryReq(limit=20))
    detail = client.thread("support_thread_42")     # ThreadNotFoundError if unknown

Given a file that a running collector holds, the client asks that collector's API
(DuckDB allows one writing process per file, and readers must not block it).
Otherwise it opens the file read-only for each call, so it never holds the file.
On ClickHouse (otel_threads.clickhouse.reading) it reads what the derive workers keep;
annotating and evaluating need a file or a collector's API there.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import duckdb
import pyarrow as pa

from otel_threads import env
from otel_threads.annotations import (
    AnnotationNotFoundError,
    add_annotation,
    delete_annotation,
    validate_annotation,
)
from otel_threads.client_clickhouse import ClickHouseSource, open_clickhouse
from otel_threads.client_errors import ThreadNotFoundError, ThreadsClientError
from otel_threads.client_evaluations import EvaluationsClient
from otel_threads.json_out import dumps
from otel_threads.paging import (
    MAX_TRANSCRIPT_LIMIT,
    MAX_TURN_LIMIT,
    TRANSCRIPT_LIMIT,
    TURN_LIMIT,
    query_thread_page,
)
from otel_threads.query import (
    ThreadDetail,
    ThreadSchema,
    ThreadsQueryReq,
    ThreadsQueryRes,
    one_statement,
    query_thread,
    query_threads,
)
from otel_threads.store import connect, default_db_path, read_holder

__all__ = ["ARROW_STREAM", "ThreadNotFoundError", "ThreadsClient", "ThreadsClientError"]

#: The media type of an Arrow IPC stream (the API's ``POST /arrow`` answers with one).
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class ThreadsClient(EvaluationsClient, ClickHouseSource):
    """Read threads from ``target``: a DuckDB file path, an ``http(s)://`` API URL, or a
    ClickHouse database (``clickhouse://host:8123/db``, ``chdb:///path``), and annotate
    them (a file or an API; evaluators' methods: otel_threads.client_evaluations)."""

    def __init__(
        self,
        target: str | os.PathLike[str] | None = None,
        *,
        token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        text = os.fspath(target) if target is not None else default_db_path()
        self.token = token if token is not None else env.value(env.TOKEN)
        self.timeout_s = timeout_s
        self.clickhouse = open_clickhouse(text)
        if self.clickhouse is not None:
            self.url, self.path = None, None
        elif text.startswith(("http://", "https://")):
            self.url: str | None = text.rstrip("/")
            self.path: str | None = None
        else:
            self.url, self.path = None, text

    # -- where to ask ---------------------------------------------------------------

    def _api(self) -> str | None:
        if self.url is not None:
            return self.url
        holder = read_holder(self.path) if self.path else None
        return holder.api if holder else None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        self._file_only()
        assert self.path is not None
        return connect(self.path, read_only=True)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        return json.loads(self._request_bytes(method, path, body))

    def _request_bytes(
        self, method: str, path: str, body: Any = None, accept: str = "application/json"
    ) -> bytes:
        api = self._api()
        assert api is not None
        data = None if body is None else dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(api + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as err:
            with err:  # (its connection)
                try:
                    message = json.loads(err.read()).get("error", err.reason)
                except ValueError:
                    message = err.reason
            if err.code == 400:
                raise ValueError(message) from None
            raise ThreadsClientError(
                f"{api}{path}: HTTP {err.code}: {message}", err.code, str(message)
            ) from None
        except urllib.error.URLError as err:
            raise ThreadsClientError(f"cannot reach {api}: {err.reason}") from None

    # -- the API ------------------------------------------------------------------------

    def threads_query(self, req: ThreadsQueryReq | None = None) -> ThreadsQueryRes:
        """Threads matching ``req`` (default: the 50 most recently updated)."""
        req = req or ThreadsQueryReq()
        if self.clickhouse is not None:
            return self._clickhouse_threads(req)
        if self._api() is not None:
            out = self._request("POST", "/threads/query", req.to_json())
            return ThreadsQueryRes(
                [ThreadSchema.from_dict(t) for t in out["threads"]], int(out["total"])
            )
        with self._connection() as con:
            return query_threads(con, req)

    def thread(self, thread_id: str, through_turn: str | None = None) -> ThreadDetail:
        """One thread: its row, turns, forks and transcript. `ThreadNotFoundError` (a
        `KeyError`) when no thread has this id, from a file and over HTTP alike.

        The transcript follows the current branch (the one ending at the newest
        turn), or the branch through ``through_turn`` (ValueError when that is not
        a turn of the thread).
        """
        if self._api() is not None:
            return self._whole_thread(thread_id, through_turn)
        with self._read(thread_id) as con:
            detail = query_thread(con, thread_id, through_turn)
        if detail is None:
            raise ThreadNotFoundError(thread_id, self._where())
        return detail

    def thread_page(
        self,
        thread_id: str,
        through_turn: str | None = None,
        *,
        turn_offset: int = 0,
        turn_limit: int = TURN_LIMIT,
        transcript_after: int | None = None,
        transcript_limit: int = TRANSCRIPT_LIMIT,
    ) -> ThreadDetail:
        """A page of one thread (``GET /threads/{id}``; `query_thread_page` says what it
        holds): ``.page`` has the totals and, in ``.page.next``, the parameters of the
        next page. `ThreadNotFoundError` (a `KeyError`) when the thread is unknown,
        ValueError for a bad parameter."""
        if self._api() is not None:
            params: dict[str, Any] = {
                "turn_offset": turn_offset,
                "turn_limit": turn_limit,
                "transcript_limit": transcript_limit,
            }
            if through_turn is not None:
                params["through_turn"] = through_turn
            if transcript_after is not None:
                params["transcript_after"] = transcript_after
            path = (
                f"/threads/{urllib.parse.quote(thread_id, safe='')}?"
                f"{urllib.parse.urlencode(params)}"
            )
            try:
                return ThreadDetail.from_dict(self._request("GET", path))
            except ThreadsClientError as err:
                if err.status == 404:
                    raise ThreadNotFoundError(thread_id, str(self.url or self.path)) from None
                raise
        with self._read(thread_id) as con:
            detail = query_thread_page(
                con,
                thread_id,
                through_turn,
                turn_offset=turn_offset,
                turn_limit=turn_limit,
                transcript_after=transcript_after,
                transcript_limit=transcript_limit,
            )
        if detail is None:
            raise ThreadNotFoundError(thread_id, self._where())
        return detail

    def _whole_thread(
        self, thread_id: str, through_turn: str | None, attempts: int = 3
    ) -> ThreadDetail:
        """Every page of a thread, put together. A thread that changes while it is read
        (its version moves) is read again from the start, up to ``attempts`` times;
        after that the pages are put together as they came."""
        for attempt in range(attempts):
            pages = [
                self.thread_page(
                    thread_id,
                    through_turn,
                    turn_limit=MAX_TURN_LIMIT,
                    transcript_limit=MAX_TRANSCRIPT_LIMIT,
                )
            ]
            while pages[-1].page is not None and pages[-1].page.next is not None:
                cursor = pages[-1].page.next
                pages.append(
                    self.thread_page(
                        thread_id,
                        through_turn,
                        turn_offset=cursor["turn_offset"],
                        turn_limit=MAX_TURN_LIMIT,
                        transcript_after=cursor.get("transcript_after"),
                        transcript_limit=MAX_TRANSCRIPT_LIMIT,
                    )
                )
            if len({p.version for p in pages}) == 1 or attempt == attempts - 1:
                return _join_pages(pages)
        raise AssertionError("unreachable")

    def annotate(
        self,
        thread_id: str,
        name: str,
        *,
        label: str | None = None,
        score: float | None = None,
        explanation: str | None = None,
        turn_id: str | None = None,
        author: str | None = None,
    ) -> str:
        """Annotate a thread (or its turn ``turn_id``): a ``name`` with a ``label``, a
        ``score`` and/or an ``explanation``; returns the annotation's id. The `annotations`
        view has it (source 'api'), and the thread's ``annotation_count`` counts it.
        `ThreadNotFoundError` for an unknown thread, KeyError for a turn not in it,
        ValueError for a bad field. On a file nobody holds, this opens it to write."""
        body = validate_annotation(name, label, score, explanation, turn_id, author)
        if self._api() is not None:
            path = f"/threads/{urllib.parse.quote(thread_id, safe='')}/annotations"
            try:
                out = self._request("POST", path, {k: v for k, v in body.items() if v is not None})
            except ThreadsClientError as err:
                if err.status == 404 and (err.detail or "").startswith("no thread "):
                    raise ThreadNotFoundError(thread_id, str(self.url or self.path)) from None
                if err.status == 404:
                    raise KeyError(err.detail) from None
                raise
            return str(out["annotation_id"])
        with self._writable() as con:
            if not con.execute("SELECT 1 FROM threads WHERE thread_id = ?", [thread_id]).fetchall():
                raise ThreadNotFoundError(thread_id, str(self.path))
            return add_annotation(con, thread_id, **body)

    def delete_annotation(self, annotation_id: str) -> None:
        """Delete an annotation made through the API (`annotate`, the page, an evaluator).
        `AnnotationNotFoundError` (a KeyError) for an unknown id, or one that came over
        OTLP (the app's own record)."""
        if self._api() is not None:
            try:
                quoted = urllib.parse.quote(annotation_id, safe="")
                self._request("DELETE", f"/annotations/{quoted}")
            except ThreadsClientError as err:
                if err.status == 404:
                    raise AnnotationNotFoundError(err.detail) from None
                raise
            return
        with self._writable() as con:
            delete_annotation(con, annotation_id)

    def _writable(self) -> duckdb.DuckDBPyConnection:
        """The file, opened to write (it must exist: FileNotFoundError otherwise)."""
        self._file_only()
        assert self.path is not None
        if not os.path.exists(self.path):
            raise FileNotFoundError(2, "no such store", self.path)
        return connect(self.path)

    def sql(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """One read-only SQL statement: (column names, rows). Writes are refused by the
        database; none or several statements are a ValueError (`one_statement`)."""
        if self.clickhouse is not None:
            return self.clickhouse.sql(sql)
        if self._api() is not None:
            out = self._request("POST", "/sql", {"sql": sql})
            return out["columns"], out["rows"]
        with self._connection() as con:
            one_statement(con, sql)
            try:
                cur = con.execute(sql)
                return [d[0] for d in cur.description or []], [list(r) for r in cur.fetchall()]
            except duckdb.Error as exc:  # read-only connection: writes are refused here
                raise ValueError(str(exc)) from None

    def arrow(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Read-only SQL, whole, as an Arrow table (``params`` for its ``?``). Through a
        collector's API (``POST /arrow``) the answer is refused, not cut, past its size
        limit (ValueError: narrow the statement). ``.to_pandas()`` makes a DataFrame.
        On ClickHouse the statement is ClickHouse's SQL, and takes no ``params``."""
        if self.clickhouse is not None:
            if params:
                raise ValueError("on ClickHouse, write the values into the SQL (no params)")
            return self.clickhouse.arrow(sql)
        if self._api() is not None:
            data = self._request_bytes(
                "POST", "/arrow", {"sql": sql, "params": params or []}, ARROW_STREAM
            )
            return pa.ipc.open_stream(data).read_all()
        with self._connection() as con:
            try:
                return con.sql(sql, params=params or None).to_arrow_table()
            except duckdb.Error as exc:  # read-only connection: writes are refused here
                raise ValueError(str(exc)) from None

    def df(self, sql: str, params: list[Any] | None = None) -> Any:
        """`arrow` as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError("ThreadsClient.df needs pandas: pip install pandas") from None
        return self.arrow(sql, params).to_pandas()


def _join_pages(pages: list[ThreadDetail]) -> ThreadDetail:
    """The whole thread from its pages, in order: turns and branch ids once each, the
    transcript in seq order, each fork and annotation once."""
    last = pages[-1]
    turns, seen = [], set()
    for p in pages:
        for t in p.turns:
            if t.turn_id not in seen:
                seen.add(t.turn_id)
                turns.append(t)
    branch = list(dict.fromkeys(b for p in pages for b in p.branch))
    rows = {m.seq: m for p in pages for m in p.transcript}
    forks = {f.parent_turn_id: f for p in pages for f in p.forks}
    notes = {a.annotation_id: a for p in pages for a in p.annotations}
    return ThreadDetail(
        last.thread,
        turns,
        [rows[k] for k in sorted(rows)],
        sorted(forks.values(), key=lambda f: (f.forked_at is None, f.forked_at, f.parent_turn_id)),
        branch,
        last.through_turn,
        version=last.version,
        content_hints=pages[0].content_hints,
        annotations=sorted(
            notes.values(),
            key=lambda a: (a.turn_id is not None, a.turn_id or "", a.created_at, a.annotation_id),
        ),
    )
