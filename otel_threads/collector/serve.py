"""`otel-threads serve --clickhouse URL`: the query API and the web page, with no receivers,
over a store on ClickHouse that derive workers keep.

`ApiServer` is the collector's API listener alone: the same handler (`ApiHandler`) on
the same listener, so the same routes answer the same way, behind the same checks (the
token, TLS, and the Host and Origin checks against DNS rebinding and other sites' pages).
Only what it reads through differs: a `ReadsBackend`, here
`otel_threads.clickhouse.serving.ClickHouseReads`. Nothing derives in this process and
nothing is written: a read answers at once, from what the workers derived.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from otel_threads.cli_clickhouse import URL_HELP
from otel_threads.collector.api import ApiHandler
from otel_threads.collector.cli import settings_options
from otel_threads.collector.config import API_SETTINGS, SETTINGS, Config, ConfigError
from otel_threads.collector.http_listener import HttpListener
from otel_threads.collector.metrics import metric_lines, resident_bytes
from otel_threads.collector.ports import listen_url
from otel_threads.reads_backend import ReadsBackend
from otel_threads.store.readonly_sql import SQL_CONCURRENCY

__all__ = ["ApiServer", "clickhouse_server", "serve"]

if TYPE_CHECKING:
    from otel_threads.clickhouse.serving import ClickHouseReads

_logger = logging.getLogger("otel_threads.serve")


class ApiServer:
    """The API listener alone, over ``reads``: `start` returns its URL; `stop` (idempotent,
    safe before `start`) stops it, lets requests under way finish, and closes ``reads``
    when it can be closed."""

    def __init__(
        self, config: Config, reads: ReadsBackend, metrics: Callable[[], str], source: str
    ) -> None:
        # (``metrics`` becomes an attribute of the handler's class: a partial, not a
        # function, or it would be bound as a method)
        if config.api is None:
            raise ConfigError("the API listens on --api: it must be on")
        self.config = config
        self.reads = reads
        #: what it reads, for the log (a URL without its password)
        self.source = source
        self.url: str | None = None
        self._listener = HttpListener(
            config,
            config.api,
            ApiHandler,
            "api",
            "--api",
            reads=reads,
            sql_slots=threading.BoundedSemaphore(SQL_CONCURRENCY),
            metrics=metrics,
        )
        self._stopped = threading.Event()

    def start(self) -> str:
        port = self._listener.start()
        scheme = "https" if self.config.tls_cert else "http"
        self.url = listen_url(scheme, self.config.api, port)
        assert self.url is not None
        return self.url

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._listener.stop()
        close = getattr(self.reads, "close", None)
        if close is not None:
            close()

    def serve_forever(self, started: Callable[[str], None] = lambda url: None) -> None:
        """Start (then ``started(url)``), run until SIGINT or SIGTERM, then stop."""
        stop = threading.Event()
        previous = {
            s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            started(self.start())
            while not stop.wait(0.5):
                pass
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)


def clickhouse_server(url: str, config: Config) -> ApiServer:
    """An `ApiServer` over the ClickHouse database ``url`` names (``clickhouse://`` or
    ``chdb://``); `otel_threads.clickhouse.engine.EngineError` when it names none."""
    from otel_threads.clickhouse.engine import EngineError, connect_engine
    from otel_threads.clickhouse.reading import ClickHouseReader
    from otel_threads.clickhouse.serving import ClickHouseReads

    reader = ClickHouseReader(connect_engine(url))
    try:
        reader.stamp()  # (the tables the workers write are there)
    except EngineError as exc:
        reader.close()
        raise EngineError(
            f"{exc}: is it a database otel-threads clickhouse init prepared? "
            f"(otel-threads clickhouse init --url URL)"
        ) from None
    reads = ClickHouseReads(reader)
    metrics = functools.partial(clickhouse_metrics, reads)
    return ApiServer(config, reads, metrics, source=reader.engine.url)


def clickhouse_metrics(reads: ClickHouseReads) -> str:
    """/metrics on ClickHouse: whether it answers, how far each shard's derive worker has
    derived, and this process's memory."""
    from otel_threads.clickhouse.engine import EngineError

    up = reads.fault is None
    marks: list[tuple[str, float]] = []
    if up:
        engine = reads.reader.engine
        try:
            marks = [
                (f'{{shard="{shard}"}}', us / 1e6)
                for shard, us in engine.rows(
                    "SELECT shard, toUnixTimestamp64Micro(argMax(watermark, updated_at)) "
                    "FROM otel_threads_watermarks GROUP BY shard ORDER BY shard"
                )
            ]
        except EngineError:
            up = False
    lines = metric_lines(
        "otel_threads_store_up", "gauge", "1 while ClickHouse answers.", [("", int(up))]
    )
    lines += metric_lines(
        "otel_threads_derive_watermark_seconds",
        "gauge",
        "How far each shard's derive worker has derived: the arrival time (Unix seconds) "
        "of the last arrival it took.",
        marks,
    )
    lines += metric_lines(
        "otel_threads_memory_bytes",
        "gauge",
        "Resident memory of this process.",
        [('{part="serve"}', resident_bytes(os.getpid()))],
    )
    return "\n".join(lines) + "\n"


def _api_options(fn: Callable) -> Callable:
    """The collector's options of its API listener (`API_SETTINGS`); --api cannot be off."""
    chosen = tuple(
        dataclasses.replace(s, help="The query API, /healthz, /metrics and the web page; "
                            "port 0 picks a free one.") if s.name == "api" else s
        for s in SETTINGS
        if s.name in API_SETTINGS
    )  # fmt: skip
    return settings_options(fn, chosen)


@click.command("serve")
@click.option("--clickhouse", "url", required=True, metavar="URL", help=URL_HELP)
@click.option(
    "--derive",
    "derive_too",
    is_flag=True,
    help="Also run a derive worker in this process (the only one: shard 0/1), e.g. for a "
    "chdb:// folder, which no other process can open meanwhile.",
)
@_api_options
def serve(url: str, derive_too: bool, **values: str | None) -> None:
    """Serve the query API and the web page over threads on ClickHouse, with no receivers.

    The same routes, answers and checks as a collector's API (--token, TLS, the Host and
    Origin checks); /sql takes ClickHouse's SQL. Annotations reach ClickHouse over OTLP,
    not through this API. Derive workers (otel-threads derive) keep what it reads; with
    chdb://PATH this process holds the folder (chDB opens one per process), so no other
    process can derive into it meanwhile. Stops on Ctrl-C or SIGTERM.

    \b
    Example:
        otel-threads serve --clickhouse clickhouse://localhost:8123/otel --api 0.0.0.0:4319 \\
            --token "$TOKEN" --allowed-hosts threads.example.com
        otel-threads threads --url http://127.0.0.1:4319
    """
    from otel_threads.clickhouse.engine import EngineError

    try:
        config = Config.load_api(values)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    began = time.monotonic()
    try:
        server = clickhouse_server(url, config)
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def started(api: str) -> None:
        _logger.info(
            "otel-threads serve started in %.2fs: clickhouse=%s api=%s auth=%s tls=%s",
            time.monotonic() - began,
            server.source,
            api,
            "token" if config.token else "none",
            "on" if config.tls_cert else "off",
        )

    worker = background_worker(url) if derive_too else None
    try:
        server.serve_forever(started)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if worker is not None:
            worker.stop()


class BackgroundWorker:
    """A derive worker (shard 0/1) in a thread of its own: `stop` ends it. A failure of one
    pass (ClickHouse away, say) is logged and the next pass tries again."""

    def __init__(self, url: str, poll_s: float = 1.0) -> None:
        from otel_threads.clickhouse.engine import connect_engine
        from otel_threads.clickhouse.worker import Worker

        self._engine = connect_engine(url)
        self._worker = Worker(self._engine)
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._thread = threading.Thread(target=self._run, name="derive", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._worker.run(self._stop, self._poll_s)
            except Exception:
                _logger.exception("derivation failed; trying again")
                self._stop.wait(self._poll_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._worker.close()
        self._engine.close()


def background_worker(url: str) -> BackgroundWorker:
    """`BackgroundWorker` on ``url``, or a one-line error."""
    from otel_threads.clickhouse.engine import EngineError

    try:
        return BackgroundWorker(url)
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
