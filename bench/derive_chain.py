"""Deriving a long chain of linked turns that loops (turn k names turn k-1, the first
names the last; no thread ids), stored with an ordinary thread beside it.

All but the last LATE turns arrive at once and are derived; then the last LATE turns
arrive one by one, each derived before the next (each arrival resolves the chain it
joins). Prints how long those LATE derivations take (`Writer.sync`), median of RUNS,
for N turns. Run:

    python bench/derive_chain.py [N] [RUNS]      (default 30000 3)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from otel_threads import thread
from otel_threads.decode import decode_traces_protobuf
from otel_threads.testing import capture
from otel_threads.writer import Writer


def spans(n: int) -> list:
    with capture(first_span_id=1) as cap:
        for k in range(n):  # turn k's span id is k + 1
            with thread(previous_turn_id=format(k if k else n, "016x")), \
                    cap.tracer.start_as_current_span(f"turn-{k}"):
                pass
        for k in range(5):
            with thread("other"), cap.tracer.start_as_current_span(f"other-{k}"):
                pass
        return cap.spans()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    made = spans(n)
    late = 20

    def table(chunk: list) -> object:
        return decode_traces_protobuf(encode_spans(chunk).SerializeToString()).table

    head = made[:n - late] + made[n:]  # the other thread too
    early = [table(head[i:i + 2048]) for i in range(0, len(head), 2048)]
    one_by_one = [table([s]) for s in made[n - late:n]]
    took = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            writer = Writer(str(Path(tmp) / "chain.duckdb")).start()
            try:
                for t in early:
                    writer.write("spans", t)
                assert writer.sync(3600)
                started = time.perf_counter()
                for t in one_by_one:
                    writer.write("spans", t)
                    assert writer.sync(3600)
                took.append(time.perf_counter() - started)
                with writer.cursor() as con:
                    other = con.execute("SELECT turn_count FROM threads WHERE thread_id = 'other'"
                                        ).fetchall()
            finally:
                writer.close()
        assert other == [(5,)], other
    print(f"{n} linked turns in a loop, the last {late} arriving one by one: derived in "
          f"{statistics.median(took):.2f}s "
          f"(median of {runs}: {', '.join(f'{t:.2f}' for t in took)})")


if __name__ == "__main__":
    main()
