"""`otel-threads eval`: run an evaluator (a Python function) over the threads that have
ended or gone quiet, and store what it finds as annotations (otel_threads.evaluations).

The evaluator runs outside any store transaction: on a file, the file is opened only
to list what is pending and to record each thread's results, so a collector can start
meanwhile (the next call then goes through its API). SIGINT or SIGTERM lets the thread
in hand be recorded, then stops; a second one stops at once. A kill loses at most the
thread in hand: its results are recorded with its evaluation_runs row or not at all,
so it is judged again on the next run, never stored twice.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

from otel_threads.cli import _client, _domain_errors, _source

__all__ = ["eval_cmd", "load_evaluator"]

#: Threads asked for at a time.
BATCH = 100
#: How long a call waits for a file that another process holds for a moment (a
#: collector starting, another eval recording) before it gives up.
LOCK_WAIT_S = 15.0


def load_evaluator(spec: str) -> tuple[Callable[[Any], Any], str]:
    """The function ``MODULE:FUNCTION`` names (imported with the current directory on
    sys.path) and its default evaluator name ``MODULE.FUNCTION``; ClickException (one
    line) when it cannot be found."""
    from otel_threads.evaluations import error_line

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"expected MODULE:FUNCTION, e.g. my_evals:judge, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise click.ClickException(
                f"no module {module_name!r} here or on sys.path: run from the folder that "
                "holds it, or install it"
            ) from None
        raise click.ClickException(f"importing {module_name} failed: {error_line(exc)}") from None
    except Exception as exc:
        raise click.ClickException(f"importing {module_name} failed: {error_line(exc)}") from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise click.ClickException(f"{module_name} has no function {attr!r}")
    return fn, f"{module_name}.{attr}"


def _seconds(text: str, option: str) -> float:
    from otel_threads.store.retention import parse_duration

    if text.strip() in ("0", "0s"):
        return 0.0
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@dataclass
class _Run:
    """What a run did, and whether it was asked to stop."""

    evaluated: int = 0
    results: int = 0
    failed: int = 0
    stop: bool = False

    def summary(self) -> str:
        threads = "thread" if self.evaluated == 1 else "threads"
        results = "result" if self.results == 1 else "results"
        line = f"evaluated {self.evaluated} {threads}, {self.results} {results}, "
        line += f"{self.failed} failed"
        return line + ("; stopped" if self.stop else "")


@contextmanager
def _stop_on_signals(run: _Run) -> Iterator[None]:
    """SIGINT and SIGTERM set ``run.stop`` (the thread in hand is finished); a second
    one stops at once (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        if run.stop:
            raise KeyboardInterrupt
        run.stop = True
        click.echo("stopping after the thread in hand ...", err=True)

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _waiting_for_lock(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, tried again while another process holds the file for a moment."""
    from otel_threads.store import StoreLockedError

    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return fn(*args)
        except StoreLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _one_pass(client: Any, fn: Callable, name: str, quiet_s: float, limit: int | None, run: _Run):
    """Judge what is pending now, least recently updated first (at most ``limit``)."""
    from otel_threads.client import ThreadNotFoundError
    from otel_threads.evaluations import PendingThread, run_evaluator

    skipped: set[PendingThread] = set()  # gone, or running again: not this pass
    done = 0
    while not run.stop and (limit is None or done < limit):
        want = BATCH if limit is None else min(BATCH, limit - done)
        pending = _waiting_for_lock(client.pending_evaluations, name, quiet_s, want + len(skipped))
        todo = [p for p in pending if p not in skipped]
        if not todo:
            return
        for p in todo[:want]:
            if run.stop:
                return
            try:
                detail = _waiting_for_lock(client.thread, p.thread_id)
            except ThreadNotFoundError:  # deleted by retention meanwhile
                skipped.add(p)
                continue
            if detail.thread.running_turn_count:  # a new turn began: not quiet now
                skipped.add(p)
                continue
            results, error = run_evaluator(fn, detail)
            last_turn_id = detail.thread.last_turn_id  # the last turn it saw
            try:
                recorded = _waiting_for_lock(
                    client.record_evaluation, name, p.thread_id, last_turn_id, results, error
                )
            except ThreadNotFoundError:
                skipped.add(p)
                continue
            done += 1
            if not recorded:  # another eval stored it first
                click.echo(f"{p.thread_id}  judged already by another run", err=True)
                continue
            run.evaluated += 1
            run.results += len(results)
            if error is None:
                click.echo(f"{p.thread_id}  {len(results)} result(s)")
            else:
                run.failed += 1
                click.echo(f"{p.thread_id}  failed: {error}")


@click.command("eval")
@click.option(
    "--run", "spec", required=True, metavar="MODULE:FUNCTION", help="The evaluator to run."
)
@click.option(
    "--quiet-for",
    default="10m",
    show_default=True,
    metavar="DURATION",
    help="Judge threads that have ended, or had nothing new for this long (e.g. 30s, "
    "10m, 2h; 0: every thread with no turn running).",
)
@click.option(
    "--name", help="The evaluator's name: its results' source [default: MODULE.FUNCTION]."
)
@_source
@click.option(
    "--limit", type=click.IntRange(min=1), help="Judge at most N threads (per pass with --follow)."
)
@click.option(
    "--follow", is_flag=True, help="Keep going: look for pending threads every --interval."
)
@click.option(
    "--interval", default="30s", show_default=True, metavar="DURATION", help="With --follow."
)
def eval_cmd(
    spec: str,
    quiet_for: str,
    name: str | None,
    db: str | None,
    url: str | None,
    limit: int | None,
    follow: bool,
    interval: str,
) -> None:
    """Run an evaluator over the threads that have ended or gone quiet: a Python function
    that takes a ThreadDetail and returns its results (EvaluationResult or dicts with
    name, label, score, explanation and optionally turn_id; a list of them; or None).
    Each is stored as an annotation whose source is the evaluator's name. A thread is
    judged once per last turn: a new turn makes it due again. An exception in the
    evaluator is recorded for that thread (evaluation_runs.error), and the others go on.
    Ctrl-C finishes the thread in hand, then stops. When a collector holds the file,
    this goes through its API.

    \b
    Example:
        otel-threads eval --run my_evals:judge --quiet-for 10m
        otel-threads eval --run examples.eval_rules:evaluate --follow --interval 1m
    """
    from otel_threads.evaluations import check_evaluator_name

    quiet_s = _seconds(quiet_for, "--quiet-for")
    every_s = _seconds(interval, "--interval")
    fn, default_name = load_evaluator(spec)
    name = name or default_name
    try:
        check_evaluator_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    client = _client(db, url)
    run = _Run()
    with _stop_on_signals(run):
        while True:
            if follow:
                try:
                    _domain_errors(lambda: _one_pass(client, fn, name, quiet_s, limit, run))
                except click.ClickException as exc:  # the collector away a moment: go on
                    click.echo(f"error: {exc.message}; trying again in {interval}", err=True)
            else:
                _domain_errors(lambda: _one_pass(client, fn, name, quiet_s, limit, run))
            if not follow or run.stop:
                break
            deadline = time.monotonic() + every_s
            while not run.stop and time.monotonic() < deadline:
                time.sleep(min(0.2, every_s))
            if run.stop:
                break
    click.echo(run.summary())
