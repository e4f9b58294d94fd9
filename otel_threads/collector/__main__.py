"""`python -m otel_threads.collector`: the same as `otel-threads collect`."""

import sys

from otel_threads.collector.allocator import exec_early

if __name__ == "__main__":
    exec_early(sys.argv[1:])  # (before the collector's imports: it may start again)
    from otel_threads.collector.cli import collect

    collect(prog_name="python -m otel_threads.collector")
