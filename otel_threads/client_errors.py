"""The errors of `ThreadsClient` (otel_threads.client re-exports them)."""

from __future__ import annotations

__all__ = ["ThreadNotFoundError", "ThreadsClientError"]


class ThreadsClientError(RuntimeError):
    """The API answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        #: the API's own error message (its ``"error"``), when it answered with one
        self.detail = detail


class ThreadNotFoundError(ThreadsClientError, KeyError):
    """No thread has the id asked for: raised alike from a file and over HTTP (where
    ``GET /threads/{id}`` answers 404). A `ThreadsClientError` (``status`` 404) and a
    `KeyError` (so a `LookupError`); ``thread_id`` is the id, the message one line:
    "no thread 'x' in otel-threads.duckdb"."""

    def __init__(self, thread_id: str, where: str) -> None:
        super().__init__(f"no thread {thread_id!r} in {where}", 404)
        self.thread_id = thread_id

    def __str__(self) -> str:  # the message as it is (KeyError's would quote it)
        return str(self.args[0])
