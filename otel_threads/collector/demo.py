"""`otel-threads demo`: the main job end to end, offline, with nothing to configure.

It starts a collector on free loopback ports writing a DuckDB file in the current
folder, runs examples/customer_service.py against it over real OTLP (three visits,
each its own process, the official OpenAI client and instrumentation talking to the
bundled fake model), then prints the threads and the customer's thread, and the
commands to explore further.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import click

from otel_threads.store import DEMO_DB

__all__ = ["demo"]

EXAMPLE = "customer_service.py"
THREAD_ID = "support_thread_42"
#: What the example needs beyond otel-threads itself.
NEEDS = {
    "openai": "openai",
    "opentelemetry.instrumentation.openai_v2": "opentelemetry-instrumentation-openai-v2",
}


def example_path() -> Path:
    """examples/customer_service.py: shipped in the package (otel_threads/examples), or
    in the source checkout."""
    import otel_threads

    package = Path(otel_threads.__file__).resolve().parent
    for candidate in (package / "examples" / EXAMPLE, package.parent / "examples" / EXAMPLE):
        if candidate.is_file():
            return candidate
    raise click.ClickException(f"cannot find the example {EXAMPLE} next to {package}")


def _missing() -> list[str]:
    missing = []
    for module, dist in NEEDS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(dist)
    return missing


def _step(number: int, text: str) -> None:
    click.secho(f"[{number}/4] {text}", bold=True)


@click.command("demo")
@click.option(
    "--db",
    default=DEMO_DB,
    show_default=True,
    metavar="PATH",
    help="The DuckDB file to write (a file already there is replaced).",
)
def demo(db: str) -> None:
    """Run the customer-service example end to end, offline, and show its thread.

    Starts a collector on free ports on 127.0.0.1 with a DuckDB file in the current
    folder, runs examples/customer_service.py against it over OTLP (three visits,
    three processes, real OpenAI client calls to a local fake model), then prints
    the threads, the customer's thread with its transcript, and what to run next.

    \b
    Example:
        otel-threads demo
        otel-threads demo --db /tmp/demo.duckdb
    """
    from otel_threads.collector.app import Collector
    from otel_threads.collector.config import Config
    from otel_threads.query import ThreadsQueryReq, query_thread, query_threads
    from otel_threads.render import thread_detail, thread_rows
    from otel_threads.store import StoreLockedError

    started = time.monotonic()
    missing = _missing()
    if missing:
        raise click.ClickException(
            f"the demo runs the examples, which need {', '.join(missing)}: "
            "pip install 'otel-threads[examples]' (or pip install -e '.[examples]')"
        )
    example = example_path()
    path = Path(db)
    click.echo(
        "otel-threads demo: a support bot's conversation, three visits, traced with "
        "OpenTelemetry and grouped into one thread. Offline.\n"
    )
    for stale in (path, Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)

    _step(1, "starting a collector")
    loopback = ("127.0.0.1", 0)
    collector = Collector(Config(db=str(path), grpc=loopback, http=loopback, api=loopback))
    try:
        ends = collector.start()
    except StoreLockedError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        click.echo(f"      OTLP/gRPC {ends.grpc}   OTLP/HTTP {ends.http}   API {ends.api}")
        where = "this folder" if path.parent == Path() else path.parent
        click.echo(f"      writing {path.resolve()} (in {where})")

        _step(2, f"running examples/{EXAMPLE} over OTLP: three visits, three processes")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = ends.grpc
        with subprocess.Popen(
            [sys.executable, str(example)],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as run:
            assert run.stdout is not None
            for line in run.stdout:
                click.echo(f"      {line.rstrip()}")
        if run.returncode != 0:
            raise click.ClickException(f"the example failed (exit code {run.returncode})")

        _step(3, "deriving threads, turns and the transcript")
        if not collector.reads.sync(30):
            raise click.ClickException("the collector did not finish deriving within 30 s")
        with collector.reads.read() as con:
            threads = query_threads(con, ThreadsQueryReq(limit=10))
            detail = query_thread(con, THREAD_ID)
        if detail is None:
            raise click.ClickException(f"the example's thread {THREAD_ID!r} is not there")

        _step(4, f"the threads ({threads.total}):")
        click.echo(thread_rows(threads.threads))
        click.echo(f"\nthe customer's thread, {THREAD_ID}:\n")
        click.echo(thread_detail(detail))
    finally:
        collector.stop()

    quoted = f"'{db}'" if " " in db else db
    click.echo(f"\ndone in {time.monotonic() - started:.1f}s. Explore further:")
    for command in (
        f"otel-threads threads --db {quoted}",
        f"otel-threads show {THREAD_ID} --db {quoted}",
        f'otel-threads sql "SELECT name, span_count, llm_call_count FROM turns '
        f"WHERE thread_id = '{THREAD_ID}'\" --db {quoted}",
        f"otel-threads collect --db {quoted}    # then open http://127.0.0.1:4319/"
        " and point your app's OTEL_EXPORTER_OTLP_ENDPOINT at "
        "http://127.0.0.1:4317",
    ):
        click.echo(f"  {command}")
