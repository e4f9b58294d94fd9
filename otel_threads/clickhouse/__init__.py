"""otel-threads on ClickHouse: the same threads over the OpenTelemetry Collector's
``clickhouseexporter`` tables (``otel_traces``, ``otel_logs``), for more than one machine.

Needs the optional extra: ``pip install 'otel-threads[clickhouse]'``.
"""
