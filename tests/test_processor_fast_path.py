"""The processor's opt-in fast path (otel_threads/sdk_fast_path.py) and its public path.

- With ``fast_path=True`` the spans end with exactly the attributes (and dropped
  counts) of the public path, with and without compat keys and SDK limits, for
  turns, children, linked turns and remote continuations: with the installed
  SDK here, and in a subprocess with every other SDK on hand: ``.venv-adk2``
  (opentelemetry-sdk 1.44, made by .ci/run) and any interpreter listed in
  ``OTEL_THREADS_SDK_PYTHONS`` (``os.pathsep``-separated), e.g. a virtualenv with
  ``opentelemetry-sdk==1.30.0``, the oldest supported release.
- ``OTEL_THREADS_FAST_PATH=1`` opts in; an explicit ``fast_path=False`` wins.
- When the check of the fast path fails, processors take the public path, with a
  warning.
- Outside sdk_fast_path.py, the span side (context, processor, testing) uses no
  private name of OpenTelemetry.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_threads import ThreadSpanProcessor, sdk_fast_path

ROOT = Path(__file__).resolve().parents[1]

# Runs here (exec) and in other interpreters (python -c): the standard library,
# OpenTelemetry and otel_threads only.
SCENARIOS = r"""
import importlib.metadata
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_threads import ThreadSpanProcessor, thread
from otel_threads.testing import SequentialIdGenerator


def run(fast_path, compat, limits):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SequentialIdGenerator(), span_limits=limits)
    processor = ThreadSpanProcessor(compat=compat, fast_path=fast_path)
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tr = provider.get_tracer("t")
    with thread("a-thread", previous_turn_id="00000000000000ab"):
        with tr.start_as_current_span("turn", attributes={"user.key": "v"}):
            with tr.start_as_current_span("child"):
                pass
        with tr.start_as_current_span("turn2"):
            pass
    with thread(previous_turn_id=7), tr.start_as_current_span("linked"):
        pass
    remote = trace.NonRecordingSpan(trace.SpanContext(
        1, 99, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))
    ctx = baggage.set_baggage("gen_ai.conversation.id", "r", trace.set_span_in_context(remote))
    tr.start_span("remote-child", context=ctx).end()
    provider.shutdown()
    spans = [(s.name, sorted(dict(s.attributes).items()), s.dropped_attributes)
             for s in exporter.get_finished_spans()]
    return processor.fast_path, spans


def check():
    compared = 0
    for compat in ((), ("weave", "openinference", "langfuse")):
        for limits in (SpanLimits(), SpanLimits(max_span_attributes=3),
                       SpanLimits(max_span_attribute_length=5)):
            fast_on, fast = run(True, compat, limits)
            public_on, public = run(False, compat, limits)
            assert fast_on and not public_on, (fast_on, public_on)
            assert fast == public, (compat, limits, fast, public)
            compared += len(fast)
    return importlib.metadata.version("opentelemetry-sdk"), compared
"""


def test_fast_path_gives_what_the_public_path_gives_with_the_installed_sdk():
    scope: dict = {}
    exec(SCENARIOS, scope)  # our own code, shared with the subprocess test
    _version, compared = scope["check"]()
    assert compared == 2 * 3 * 5


def _other_sdk_pythons() -> list[str]:
    found = [str(ROOT / ".venv-adk2" / "bin" / "python")]
    found += [p for p in os.environ.get("OTEL_THREADS_SDK_PYTHONS", "").split(os.pathsep) if p]
    return [p for p in found if Path(p).exists()]


@pytest.mark.parametrize("python", _other_sdk_pythons() or [None])
def test_fast_path_gives_what_the_public_path_gives_with_other_sdk_versions(python):
    if python is None:
        pytest.skip("no other OpenTelemetry SDK on hand (.venv-adk2, OTEL_THREADS_SDK_PYTHONS)")
    code = SCENARIOS + "\nimport json\nprint(json.dumps(check()))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_THREADS_FAST_PATH", None)
    done = subprocess.run(
        [python, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    version, compared = json.loads(done.stdout)
    assert compared == 2 * 3 * 5, version


def test_the_environment_variable_opts_in_and_an_explicit_argument_wins(monkeypatch):
    monkeypatch.delenv("OTEL_THREADS_FAST_PATH", raising=False)
    assert ThreadSpanProcessor().fast_path is False
    monkeypatch.setenv("OTEL_THREADS_FAST_PATH", "1")
    assert ThreadSpanProcessor().fast_path is True
    assert ThreadSpanProcessor(fast_path=False).fast_path is False
    monkeypatch.setenv("OTEL_THREADS_FAST_PATH", "0")
    assert ThreadSpanProcessor().fast_path is False
    assert ThreadSpanProcessor(fast_path=True).fast_path is True


def test_when_the_check_fails_the_processor_takes_the_public_path(monkeypatch, caplog):
    monkeypatch.setattr(sdk_fast_path, "_probe", lambda: False)
    sdk_fast_path.available.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="otel_threads"):
            processor = ThreadSpanProcessor(fast_path=True)
            ThreadSpanProcessor(fast_path=True)
        assert processor.fast_path is False
        assert [r.message for r in caplog.records if "fast path" in r.message] == [
            "otel_threads: the processor's fast path does not work with this "
            "opentelemetry-sdk; ThreadSpanProcessor uses Span.set_attributes instead"
        ]
    finally:
        sdk_fast_path.available.cache_clear()


_PRIVATE_ATTRIBUTES = {
    "_attributes",
    "_dict",
    "_immutable",
    "_lock",
    "_context",
    "_parent",
    "_end_time",
    "_SPAN_KEY",
}


@pytest.mark.parametrize("module", ["context.py", "processor.py", "testing/__init__.py"])
def test_the_span_side_uses_no_private_opentelemetry_name(module):
    tree = ast.parse((ROOT / "otel_threads" / module).read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry"):
            parts = (node.module or "").split(".")
            found += [node.module for p in parts if p.startswith("_")]
            found += [a.name for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [
                a.name
                for a in node.names
                if a.name.startswith("opentelemetry")
                and any(p.startswith("_") for p in a.name.split("."))
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in _PRIVATE_ATTRIBUTES
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        ):
            found.append(node.attr)
    assert found == []


def test_the_probe_runs_only_when_the_fast_path_is_asked_for():
    code = (
        "import sys\n"
        "from otel_threads import ThreadSpanProcessor\n"
        "ThreadSpanProcessor()\n"
        "assert 'otel_threads.sdk_fast_path' not in sys.modules\n"
        "assert ThreadSpanProcessor(fast_path=True).fast_path\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_THREADS_FAST_PATH", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
