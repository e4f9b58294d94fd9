"""The collector: receivers, decode workers and the writer, started and stopped together.

Start order: the listen addresses are checked (one in use is an error before the file
is touched), writer (opens the file), decode workers, API, receivers; then a note
next to the file (`<db>.collector.json`) says who holds it and where its API is. A
start that fails leaves no file it created and wrote nothing to.
Stop order is the reverse, and nothing acknowledged is lost: receivers stop
taking calls, exports under way finish, the writer commits what it accepted,
the file is checkpointed and closed. `stop` is idempotent and safe before `start`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass

import duckdb

from otel_threads.collector.api import ApiHandler
from otel_threads.collector.config import Config
from otel_threads.collector.grpc_server import GrpcReceiver
from otel_threads.collector.http_listener import HttpListener
from otel_threads.collector.http_server import OtlpHttpHandler
from otel_threads.collector.ingest import Ingest
from otel_threads.collector.metrics import CpuParts, render_metrics
from otel_threads.collector.ports import check_free, listen_url
from otel_threads.collector.retention import RetentionTask
from otel_threads.malloc import allocator, tune_malloc
from otel_threads.prices import reprice
from otel_threads.store import read_holder, remove_holder, write_holder
from otel_threads.store.memory_budget import DEFAULT_MEMORY_LIMIT, MemoryBudget
from otel_threads.store.readonly_sql import SQL_CONCURRENCY
from otel_threads.store.reads import Reads
from otel_threads.store.store import Store
from otel_threads.store.writer import Writer

__all__ = ["Collector", "Endpoints"]

_logger = logging.getLogger("otel_threads.collector")


@dataclass(frozen=True)
class Endpoints:
    """Where a started collector listens (ports as bound: 0 becomes a real port)."""

    grpc: str | None
    http: str | None
    api: str | None


def _raise_open_files_limit() -> None:
    """Each connection is a file descriptor: take the hard limit, not the soft 1024 that
    many systems start with (each listener caps its own connections below it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard)
            )


def _harden(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Settings of the collector's database, each time the writer opens it."""
    # (memory: the store sets DuckDB's limit, from the collector's MemoryBudget; past
    # it DuckDB spills to <db>.tmp, reads and derivation)
    # The API serves ad-hoc SQL: no files, ATTACH or extensions from this database,
    # and no changing that back (its own file is unaffected).
    con.execute("SET enable_external_access = false")
    # One DuckDB thread: on a small machine the decode workers need the other cores
    # more than the insert needs parallelism (measured: less CPU per row).
    con.execute("SET threads = 1")
    con.execute("SET lock_configuration = true")
    # the price file's entries (none without --prices): costs follow them
    reprice(con, list(config.prices) if config.prices else None)


class Collector:
    def __init__(self, config: Config) -> None:
        self.config = config
        #: DuckDB's memory limit, raised as the store's indexes grow with ``auto``
        self.memory = MemoryBudget(
            config.memory_limit or DEFAULT_MEMORY_LIMIT, auto=config.memory_limit is None
        )
        #: its CPU time by part, for /metrics
        self.cpu = CpuParts()
        #: the database file: its connection, reads, derivation, health
        self.store = Store(
            config.db,
            on_open=lambda con: _harden(con, config),
            derive_workers=config.derive_workers,
            memory_budget=self.memory,
        )
        self.writer = Writer(
            self.store, max_pending_rows=config.max_pending_rows, on_fork=config.on_fork
        )
        #: what the API and the demo read through
        self.reads = Reads(self.store)
        self.ingest = Ingest(
            self.writer,
            parse_workers=config.parse_workers,
            max_request_bytes=config.max_request_bytes,
            max_inflight_bytes=config.max_ingest_memory,
        )
        self._grpc: GrpcReceiver | None = None
        self._http: HttpListener | None = None
        self._api: HttpListener | None = None
        self.retention = RetentionTask(self.store, config.retention) if config.retention else None
        self.endpoints = Endpoints(None, None, None)
        #: /sql statements running at once (store.readonly_sql.SQL_CONCURRENCY)
        self.sql_slots = threading.BoundedSemaphore(SQL_CONCURRENCY)
        self._started = False
        self._stopped = threading.Event()

    def start(self) -> Endpoints:
        started = time.monotonic()
        cfg = self.config
        _raise_open_files_limit()
        tune_malloc()
        scheme = "https" if cfg.tls_cert else "http"
        if read_holder(cfg.db) is None:  # a held file: the store's error names its holder
            for address, flag in ((cfg.grpc, "--grpc"), (cfg.http, "--http"), (cfg.api, "--api")):
                if address is not None:
                    check_free(address, flag)
        created = not os.path.exists(cfg.db)
        self.store.open()
        self.writer.start()
        try:
            self.ingest.start()
            api_port = http_port = grpc_port = None
            if cfg.api:
                self._api = HttpListener(
                    cfg,
                    cfg.api,
                    ApiHandler,
                    "api",
                    "--api",
                    reads=self.reads,
                    sql_slots=self.sql_slots,
                    metrics=functools.partial(render_metrics, self),
                )
                api_port = self._api.start()
            if cfg.http:
                self._http = HttpListener(
                    cfg, cfg.http, OtlpHttpHandler, "otlp-http", "--http", ingest=self.ingest
                )
                http_port = self._http.start()
            if cfg.grpc:
                self._grpc = GrpcReceiver(cfg, self.ingest)
                grpc_port = self._grpc.start()
        except BaseException:
            self.stop()
            if created:
                self._remove_unused_file()
            raise
        if self.retention is not None:
            self.retention.start()
        self._started = True
        self.endpoints = Endpoints(
            grpc=listen_url(scheme, cfg.grpc, grpc_port),
            http=listen_url(scheme, cfg.http, http_port),
            api=listen_url(scheme, cfg.api, api_port),
        )
        if self.endpoints.api:
            write_holder(
                cfg.db, self.endpoints.api, grpc=self.endpoints.grpc, http=self.endpoints.http
            )
        _logger.info(
            "otel-threads collector started in %.2fs: db=%s grpc=%s http=%s api=%s "
            "decode_workers=%d derive_workers=%d auth=%s tls=%s allocator=%s",
            time.monotonic() - started,
            cfg.db,
            self.endpoints.grpc or "off",
            self.endpoints.http or "off",
            self.endpoints.api or "off",
            cfg.parse_workers,
            cfg.derive_workers,
            "token" if cfg.token else "none",
            "on" if cfg.tls_cert else "off",
            allocator(),
        )
        return self.endpoints

    def _remove_unused_file(self) -> None:
        """After a failed start: the file this start created, unless something was
        written to it (an export a listener acknowledged before another failed)."""
        if any(self.writer.stats.written.values()):
            return
        db = self.config.db
        for path in (db, f"{db}.wal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(f"{db}.tmp")  # DuckDB's spill folder, if it made one (empty)

    def stop(self, grace: float = 10.0) -> None:
        """Stop everything; what was acknowledged is on disk when this returns."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        deadline = time.monotonic() + grace
        if self.retention is not None:
            self.retention.stop()
        for listener in (self._http, self._api):  # (the API's requests under way go on)
            if listener is not None:
                listener.closing()
        if self._grpc is not None:
            self._grpc.stop(grace=max(0.0, deadline - time.monotonic()))
        if self._http is not None:
            self._http.stop()
        drained = self.ingest.drain(max(0.0, deadline - time.monotonic()))
        self.writer.close(timeout=max(1.0, deadline - time.monotonic()))
        # derivation gets what is left of the grace (its queue outlives the process)
        self.store.close(drain_timeout=max(1.0, deadline - time.monotonic()))
        self.ingest.close()
        if self._api is not None:
            self._api.stop()
        remove_holder(self.config.db)
        if self._started:
            s = self.writer.stats
            _logger.info(
                "otel-threads collector stopped%s: wrote %d spans and %d log records "
                "(%d duplicates dropped) in %d commits",
                "" if drained else " (some exports were cut off)",
                s.written["spans"],
                s.written["logs"],
                s.duplicates["spans"] + s.duplicates["logs"],
                s.commit_seconds.count,
            )

    def serve_forever(self) -> None:
        """Start, then run until SIGINT or SIGTERM; then stop cleanly.

        The first signal says "stopping" at once and stops as `stop` does; a second one
        (Ctrl-C again) stops at once: exports not yet acknowledged are dropped (their
        senders retry), everything acknowledged is committed already and stays.
        """
        stop = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            if not stop.is_set():
                stop.set()
                return
            os.write(
                2,
                b"otel-threads collector: stopping now, without waiting "
                b"(everything acknowledged is on disk)\n",
            )
            remove_holder(self.config.db)
            os._exit(128 + signum)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.wait(0.5):
                pass
            _logger.info("otel-threads collector stopping... (press Ctrl-C again to stop at once)")
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
