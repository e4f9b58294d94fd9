"""Whether the store can commit durably, and what the writer does when it cannot.

The writer (otel_threads.store.writer) acknowledges an export only after its commit. That
promise needs more than a successful COMMIT: the file must still be the one the
writer opened (a file deleted under a running process takes every later commit into an
unlinked inode, gone at stop), writable (a read-only file makes DuckDB's next
checkpoint a fatal error), and DuckDB must not have invalidated the database (after
a fatal error every later statement fails until the file is opened again).

A `Fault` says which of these went wrong. While the writer has one, exports are
refused (UNAVAILABLE / 503: never acknowledged) and the writer heals: it reopens the
file after a fatal error or a failed open, writes a deleted file back from the copy
it still holds open, and waits out a read-only file or a failing disk. One log line
when a fault starts, one when it ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass

import duckdb

__all__ = ["Fault", "check_file", "classify", "file_identity", "write_back"]

#: What can keep the store from committing durably. ``reopen``: the writer must close
#: and open the file again to recover.
KINDS = {
    "deleted": "the store file was deleted",
    "replaced": "the store file was replaced by another file",
    "read-only": "the store file or its directory is read-only",
    "fatal": "DuckDB stopped the database after a fatal error",
    "write": "committing to the store fails",
    "open": "the store file cannot be opened",
    # (a store on ClickHouse: otel_threads.clickhouse.serving)
    "unreachable": "the ClickHouse store does not answer",
}


@dataclass(frozen=True)
class Fault:
    """Why the store cannot commit durably now."""

    kind: str  #: one of `KINDS`
    detail: str = ""

    @property
    def reopen(self) -> bool:
        """Recovering needs the file closed and opened again."""
        return self.kind in ("fatal", "open", "deleted")

    @property
    def reads(self) -> bool:
        """Reads can go on meanwhile (the open database still answers)."""
        return not self.reopen

    def line(self, path: str) -> str:
        """The one log line that says what happened and what the collector does."""
        said = {
            "deleted": f"the store file {path} was deleted while the collector ran: exports "
            "are refused until the data it holds is written back to it",
            "replaced": f"{path} was replaced by another file while the collector ran: exports "
            "are refused (the data the collector holds is written back if that "
            "file is removed)",
            "read-only": f"the store {path} (or its directory) is read-only: exports are "
            "refused until it is writable again",
            "fatal": f"DuckDB stopped the store {path} after a fatal error: exports are "
            "refused until it opens again and takes a checkpoint (tried at once, "
            "then at least every 30 s)",
            "write": f"committing to the store {path} fails: exports are refused and "
            "retried every second",
            "open": f"cannot open the store {path}: exports are refused until it opens "
            "(tried again at once, then at least every 30 s)",
        }[self.kind]
        return f"{said} ({self.detail})" if self.detail else said


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def classify(exc: BaseException) -> Fault | None:
    """The fault ``exc`` shows in the store itself, or None for an error of the data
    (a value DuckDB cannot take: the other rows of the batch still commit)."""
    text = str(exc)
    if (
        isinstance(exc, (duckdb.FatalException, duckdb.InternalException))
        or "database has been invalidated" in text
    ):
        return Fault("fatal", _one_line(exc))
    if isinstance(exc, (duckdb.IOException, duckdb.OutOfMemoryException, OSError)):
        return Fault("write", _one_line(exc))
    if isinstance(exc, duckdb.TransactionException) and "Failed to commit" in text:
        return Fault("write", _one_line(exc))
    return None


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def check_file(path: str, identity: tuple[int, int] | None) -> Fault | None:
    """Whether the file at ``path`` is still the one opened as ``identity``, and writable
    (the file and its directory: DuckDB makes its WAL there)."""
    now = file_identity(path)
    if now is None:
        return Fault("deleted")
    if identity is not None and now != identity:
        return Fault("replaced")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.access(path, os.W_OK) or not os.access(directory, os.W_OK):
        return Fault("read-only")
    return None


def _open_deleted(path: str) -> str | None:
    """A /proc path to the deleted file this process still has open as ``path``."""
    wanted = os.path.abspath(path) + " (deleted)"
    fds = "/proc/self/fd"
    try:
        names = os.listdir(fds)
    except OSError:  # no /proc (not Linux)
        return None
    for name in names:
        try:
            if os.readlink(f"{fds}/{name}") == wanted:
                return f"{fds}/{name}"
        except OSError:
            continue
    return None


def write_back(path: str) -> int:
    """Copy the deleted file this process holds open as ``path`` back to ``path``; returns
    its size. Checkpoint first, so the file holds everything committed.

    Raises OSError when it cannot: no open copy, no directory, no space, or a file
    appeared at ``path`` meanwhile (never overwritten).
    """
    source = _open_deleted(path)
    if source is None:
        raise FileNotFoundError(f"this process holds no deleted copy of {path}")
    temporary = f"{path}.restoring-{os.getpid()}"
    try:
        with open(source, "rb") as src, open(temporary, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.link(temporary, path)  # fails if a file is there now: never overwrite one
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return os.path.getsize(path)
