"""A collector as its own process for the benchmarks: `python -m otel_threads.collector`
on a file, OTLP/HTTP and the API on ephemeral loopback ports, gRPC off."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def start_collector(db: Path, log: IO[str], *flags: str) -> tuple[subprocess.Popen, dict]:
    """The started process and its holder note (its URLs), once it is listening."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_threads.collector",
            "--db",
            str(db),
            "--grpc",
            "off",
            "--http",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            *flags,
        ],
        cwd=ROOT,
        stderr=log,
    )
    note: dict = {}
    while note.get("pid") != proc.pid:
        if proc.poll() is not None:
            raise RuntimeError(f"the collector exited with {proc.returncode}; see its log")
        try:
            note = json.loads(Path(f"{db}.collector.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    return proc, note
