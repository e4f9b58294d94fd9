"""`python -m collector`: the same as `otel-threads collect`."""

from collector.cli import collect

if __name__ == "__main__":
    collect(prog_name="python -m collector")
