"""Cost of ThreadSpanProcessor per span, measured interleaved in one run.

    python bench/processor.py [--rounds 40] [--spans 1000]

Three setups share one shape of work: a span with one child (two levels), started
with `start_as_current_span`, no exporter:
  (1) bare: an SDK TracerProvider with no processor;
  (2) outside: the same plus ThreadSpanProcessor, no thread() block;
  (3) inside: the same, inside `with thread(...)`, so each outer span is a turn
      and each child belongs to it;
  (4) inside, fast path: (3) with `ThreadSpanProcessor(fast_path=True)`, which
      writes attributes past `Span.set_attributes` (otel_threads/sdk_fast_path.py).
Rounds alternate between the setups so machine noise hits all alike; the figures
are medians of per-round means. Targets: (2)/(1) <= 1.05, (3)/(1) <= 1.25; (4)
shows what the opt-in fast path gains over (3).
"""

from __future__ import annotations

import argparse
import statistics
import time

from opentelemetry.sdk.trace import TracerProvider

from otel_threads import ThreadSpanProcessor, thread


def _tracer(with_processor: bool, fast_path: bool = False):
    provider = TracerProvider()
    if with_processor:
        processor = ThreadSpanProcessor(fast_path=fast_path)
        if processor.fast_path != fast_path:
            raise SystemExit("the fast path does not work with this opentelemetry-sdk")
        provider.add_span_processor(processor)
    return provider.get_tracer("bench")


def _work(tracer, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n // 2):
        with tracer.start_as_current_span("turn"):
            with tracer.start_as_current_span("child"):
                pass
    return (time.perf_counter() - start) / (n // 2 * 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--spans", type=int, default=1000, help="spans per round and setup")
    args = ap.parse_args()

    bare, outside, inside = _tracer(False), _tracer(True), _tracer(True)
    inside_fast = _tracer(True, fast_path=True)
    block = thread("bench-thread")

    def run_inside(n: int) -> float:
        with block:
            return _work(inside, n)

    def run_inside_fast(n: int) -> float:
        with block:
            return _work(inside_fast, n)

    setups = {
        "(1) bare TracerProvider": lambda n: _work(bare, n),
        "(2) ThreadSpanProcessor, outside threads": lambda n: _work(outside, n),
        "(3) ThreadSpanProcessor, inside a thread": run_inside,
        "(4) ... inside a thread, fast_path=True": run_inside_fast,
    }
    for fn in setups.values():  # warm up
        fn(args.spans)
    samples: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(args.rounds):
        for name, fn in setups.items():
            samples[name].append(fn(args.spans))

    med = {name: statistics.median(v) * 1e6 for name, v in samples.items()}
    base = med["(1) bare TracerProvider"]
    print(f"median cost per span over {args.rounds} interleaved rounds of {args.spans} spans")
    for name, us in med.items():
        print(f"  {name:<44} {us:7.3f} us")
    r2 = med["(2) ThreadSpanProcessor, outside threads"] / base
    r3 = med["(3) ThreadSpanProcessor, inside a thread"] / base
    print(f"ratio (2)/(1) = {r2:.3f}   target <= 1.05")
    r4 = med["(4) ... inside a thread, fast_path=True"] / base
    print(f"ratio (3)/(1) = {r3:.3f}   target <= 1.25")
    print(f"ratio (4)/(1) = {r4:.3f}   (opt-in fast path)")


if __name__ == "__main__":
    main()
