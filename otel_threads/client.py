"""`ThreadsClient`: the threads query against a DuckDB file or a collector's API.

    client = ThreadsClient("otel-threads.duckdb")     # or "http://127.0.0.1:4319"
    res = client.threads_query(ThreadsQueryReq(limit=20))
    detail = client.thread("support_thread_42")

Given a file that a running collector holds, the client asks that collector's API
(DuckDB allows one writing process per file, and readers must not block it).
Otherwise it opens the file read-only for each call, so it never holds the file.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import duckdb

from otel_threads.query import (
    ThreadDetail,
    ThreadSchema,
    ThreadsQueryReq,
    ThreadsQueryRes,
    query_thread,
    query_threads,
)
from otel_threads.store import connect, default_db_path, read_holder

__all__ = ["ThreadsClient", "ThreadsClientError"]


class ThreadsClientError(RuntimeError):
    """The API answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ThreadsClient:
    """Read threads from ``target``: a DuckDB file path or an ``http(s)://`` API URL."""

    def __init__(self, target: str | os.PathLike[str] | None = None, *,
                 token: str | None = None, timeout_s: float = 30.0) -> None:
        text = os.fspath(target) if target is not None else default_db_path()
        self.token = token if token is not None else os.environ.get("OTEL_THREADS_TOKEN")
        self.timeout_s = timeout_s
        if text.startswith(("http://", "https://")):
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
        assert self.path is not None
        return connect(self.path, read_only=True)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        api = self._api()
        assert api is not None
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(api + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error", err.reason)
            except ValueError:
                message = err.reason
            if err.code == 400:
                raise ValueError(message) from None
            raise ThreadsClientError(f"{api}{path}: HTTP {err.code}: {message}", err.code) from None
        except urllib.error.URLError as err:
            raise ThreadsClientError(f"cannot reach {api}: {err.reason}") from None

    # -- the API ------------------------------------------------------------------------

    def threads_query(self, req: ThreadsQueryReq | None = None) -> ThreadsQueryRes:
        """Threads matching ``req`` (default: the 50 most recently updated)."""
        req = req or ThreadsQueryReq()
        if self._api() is not None:
            out = self._request("POST", "/threads/query", req.to_json())
            return ThreadsQueryRes([ThreadSchema.from_dict(t) for t in out["threads"]],
                                   int(out["total"]))
        with self._connection() as con:
            return query_threads(con, req)

    def thread(self, thread_id: str, through_turn: str | None = None) -> ThreadDetail:
        """One thread: its row, turns, forks and transcript. KeyError when unknown.

        The transcript follows the current branch (the one ending at the newest
        turn), or the branch through ``through_turn`` (ValueError when that is not
        a turn of the thread).
        """
        if self._api() is not None:
            path = "/threads/" + urllib.parse.quote(thread_id, safe="")
            if through_turn is not None:
                path += "?" + urllib.parse.urlencode({"through_turn": through_turn})
            try:
                out = self._request("GET", path)
            except ThreadsClientError as err:
                if err.status == 404:
                    raise KeyError(thread_id) from None
                raise
            return ThreadDetail.from_dict(out)
        with self._connection() as con:
            detail = query_thread(con, thread_id, through_turn)
        if detail is None:
            raise KeyError(thread_id)
        return detail

    def sql(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        """Read-only SQL: (column names, rows). Writes are refused by the database."""
        if self._api() is not None:
            out = self._request("POST", "/sql", {"sql": sql})
            return out["columns"], out["rows"]
        with self._connection() as con:
            try:
                cur = con.execute(sql)
                return [d[0] for d in cur.description or []], [list(r) for r in cur.fetchall()]
            except duckdb.Error as exc:  # read-only connection: writes are refused here
                raise ValueError(str(exc)) from None
