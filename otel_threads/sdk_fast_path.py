"""Opt-in: `ThreadSpanProcessor` writes its attributes past `Span.set_attributes`.

``ThreadSpanProcessor(fast_path=True)``, or ``OTEL_THREADS_FAST_PATH=1`` in the
environment when the processor is made, puts the processor's attributes straight
into the span's attribute container. `Span.set_attributes` re-validates every
value, copies the mapping and takes two locks: about 2.5-3 us for two or three
short strings with opentelemetry-sdk 1.45, which inside a thread is most of what
the processor costs (README, "Benchmarks", has the measured gain).

This is the one module of ``otel_threads`` that touches private names of the
OpenTelemetry SDK: a span's ``_attributes`` and, of the `BoundedAttributes` there,
``_dict`` and ``_immutable``. The write happens only when it gives exactly what
`set_attributes` would: in ``on_start`` (the span is not yet visible to other
code), for our own plain str/bool values, when the container is exactly
`BoundedAttributes`, mutable, with no value-length limit, and the attributes fit
under its count limit. Any other span takes the public path.

Whether the write works with the installed SDK is checked once per process, the
first time a processor asks for it (`available`), never at import: two spans of a
private `TracerProvider`, one written each way, must end with the same
attributes. If they do not, processors take the public path and a warning is
logged. Tested against opentelemetry-sdk 1.30 and the newest installed release
(tests/test_processor_fast_path.py).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from opentelemetry.attributes import BoundedAttributes

__all__ = ["available", "set_attributes"]

_logger = logging.getLogger(__name__)


def set_attributes(span: Any, attrs: dict[str, Any]) -> None:
    """Add already-valid attributes to a span that is still being started."""
    bounded = getattr(span, "_attributes", None)
    if (
        type(bounded) is BoundedAttributes
        and bounded.max_value_len is None
        and not bounded._immutable
        and (bounded.maxlen is None or len(bounded._dict) + len(attrs) <= bounded.maxlen)
    ):
        bounded._dict.update(attrs)
    else:
        span.set_attributes(attrs)


def _probe() -> bool:
    """Whether the direct write gives what `set_attributes` gives, with this SDK."""
    try:
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer(__name__)
        probe = {"a.key": "value", "b.key": True}
        one, two = tracer.start_span("probe"), tracer.start_span("probe")
        set_attributes(one, probe)
        two.set_attributes(probe)
        one.end()
        two.end()
        return dict(one.attributes or {}) == dict(two.attributes or {}) == probe
    except Exception:
        return False


@functools.cache
def available() -> bool:
    """Whether the fast path works with the installed SDK (checked once, on first call)."""
    works = _probe()
    if not works:
        _logger.warning(
            "otel_threads: the processor's fast path does not work with this "
            "opentelemetry-sdk; ThreadSpanProcessor uses Span.set_attributes instead"
        )
    return works
