"""`python -m otel_threads.collector`: the same as `otel-threads collect`."""

from otel_threads.collector.cli import collect

if __name__ == "__main__":
    collect(prog_name="python -m otel_threads.collector")
