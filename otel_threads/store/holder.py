"""The holder note: a collector that holds a database file says so in
``<file>.collector.json`` (its PID and API URL), so that reading commands can ask its
API instead of opening the file, and a locked file's error can name the holder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HolderInfo", "read_holder", "remove_holder", "write_holder"]


@dataclass(frozen=True)
class HolderInfo:
    """What a collector that holds a database file says about itself."""

    pid: int
    api: str
    grpc: str | None = None
    http: str | None = None


def _holder_path(db: str) -> Path:
    return Path(f"{db}.collector.json")


def write_holder(db: str, api: str, **more: str | None) -> None:
    """Record that this process holds ``db`` and serves its API at ``api``."""
    note = {"pid": os.getpid(), "api": api, **more}
    _holder_path(db).write_text(json.dumps(note), encoding="utf-8")


def remove_holder(db: str) -> None:
    """Forget the holder note, if it is ours."""
    holder = read_holder(db)
    if holder is not None and holder.pid == os.getpid():
        _holder_path(db).unlink(missing_ok=True)


def read_holder(db: str) -> HolderInfo | None:
    """The live collector holding ``db``, if its note names a running process."""
    try:
        note = json.loads(_holder_path(db).read_text(encoding="utf-8"))
        pid, api = int(note["pid"]), str(note["api"])
        grpc, http = note.get("grpc"), note.get("http")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return HolderInfo(pid, api, grpc, http)
