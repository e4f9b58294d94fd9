"""The tables the OpenTelemetry Collector's ``clickhouseexporter`` writes, as our own DDL.

Followed: opentelemetry-collector-contrib ``exporter/clickhouseexporter`` at v0.151.0
(``internal/sqltemplates/*.sql``, ``exporter_traces.go``, ``exporter_logs.go``), the
bloom-filter index variant (servers before ClickHouse 26.2 get it; 26.2+ gets ``text``
indexes, which change no column). v0.151.0 is where the logs table lost ``TimestampTime``
and gained the ``__otel_materialized_*`` columns (PR #47720); an older ``otel_logs`` has
``TimestampTime`` too, which nothing here reads. The column lists are the exporter's; the
statements are written here from them (not copied), so ``exporter_ddl`` creates what the
exporter's ``create_schema: true`` creates, in a database of our choosing.

``TRACE_COLUMNS`` / ``LOG_COLUMNS`` are what the derive worker selects, in this order and
spelled as a SELECT needs them (the Nested columns' parts are ``Events.Timestamp`` etc.).
"""

from __future__ import annotations

from otel_threads.clickhouse.engine import quote_name

__all__ = [
    "LOGS_TABLE",
    "LOG_COLUMNS",
    "LOG_TYPES",
    "TRACES_TABLE",
    "TRACE_COLUMNS",
    "TRACE_ID_TS_TABLE",
    "TRACE_ID_TS_VIEW",
    "TRACE_TYPES",
    "exporter_ddl",
]

TRACES_TABLE = "otel_traces"
TRACE_ID_TS_TABLE = "otel_traces_trace_id_ts"
TRACE_ID_TS_VIEW = "otel_traces_trace_id_ts_mv"
LOGS_TABLE = "otel_logs"

_MAP = "Map(LowCardinality(String), String)"
_LC = "LowCardinality(String)"

# (column, type, codec): otel_traces as the exporter inserts it (traces_insert.sql order).
_TRACE_DEFS = (
    ("Timestamp", "DateTime64(9)", "Delta(8), ZSTD(1)"),  # span start
    ("TraceId", "String", "ZSTD(1)"),  # hex; '' never (spans need one)
    ("SpanId", "String", "ZSTD(1)"),
    ("ParentSpanId", "String", "ZSTD(1)"),  # '' for a root span
    ("TraceState", "String", "ZSTD(1)"),
    ("SpanName", _LC, "ZSTD(1)"),
    ("SpanKind", _LC, "ZSTD(1)"),  # 'Internal' (pdata String()) or 'SPAN_KIND_INTERNAL' (old)
    ("ServiceName", _LC, "ZSTD(1)"),
    ("ResourceAttributes", _MAP, "ZSTD(1)"),  # every value as pcommon Value.AsString()
    ("ScopeName", "String", "ZSTD(1)"),
    ("ScopeVersion", "String", "ZSTD(1)"),
    ("SpanAttributes", _MAP, "ZSTD(1)"),
    ("Duration", "UInt64", "ZSTD(1)"),  # end - start in ns (uint64 arithmetic)
    ("StatusCode", _LC, "ZSTD(1)"),  # 'Unset' / 'Ok' / 'Error' or 'STATUS_CODE_ERROR' (old)
    ("StatusMessage", "String", "ZSTD(1)"),
)
_EVENT_PARTS = (("Timestamp", "DateTime64(9)"), ("Name", _LC), ("Attributes", _MAP))
_LINK_PARTS = (
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("TraceState", "String"),
    ("Attributes", _MAP),
)
_TRACE_INDEXES = (
    ("idx_trace_id", "TraceId", "bloom_filter(0.001)", 1),
    ("idx_res_attr_key", "mapKeys(ResourceAttributes)", "bloom_filter(0.01)", 1),
    ("idx_res_attr_value", "mapValues(ResourceAttributes)", "bloom_filter(0.01)", 1),
    ("idx_span_attr_key", "mapKeys(SpanAttributes)", "bloom_filter(0.01)", 1),
    ("idx_span_attr_value", "mapValues(SpanAttributes)", "bloom_filter(0.01)", 1),
    ("idx_duration", "Duration", "minmax", 1),
)

# otel_logs as the exporter inserts it (logs_insert.sql order, EventName last).
_LOG_DEFS = (
    ("Timestamp", "DateTime64(9)", "Delta(8), ZSTD(1)"),  # time, else observed time
    ("TraceId", "String", "ZSTD(1)"),  # '' when the record has none
    ("SpanId", "String", "ZSTD(1)"),
    ("TraceFlags", "UInt8", None),
    ("SeverityText", _LC, "ZSTD(1)"),
    ("SeverityNumber", "UInt8", None),
    ("ServiceName", _LC, "ZSTD(1)"),
    ("Body", "String", "ZSTD(1)"),  # the body's AsString(): a map body as JSON text
    ("ResourceSchemaUrl", _LC, "ZSTD(1)"),
    ("ResourceAttributes", _MAP, "ZSTD(1)"),
    ("ScopeSchemaUrl", _LC, "ZSTD(1)"),
    ("ScopeName", "String", "ZSTD(1)"),
    ("ScopeVersion", _LC, "ZSTD(1)"),
    ("ScopeAttributes", _MAP, "ZSTD(1)"),
    ("LogAttributes", _MAP, "ZSTD(1)"),
    ("EventName", "String", "ZSTD(1)"),
)
# Resource attributes the v0.151.0 logs table copies into columns of their own.
_LOG_MATERIALIZED = (
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.deployment.name",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "deployment.environment.name",
)
_LOG_INDEXES = (
    ("idx_trace_id", "TraceId", "bloom_filter(0.001)", 1),
    ("idx_res_attr_key", "mapKeys(ResourceAttributes)", "bloom_filter(0.01)", 1),
    ("idx_res_attr_value", "mapValues(ResourceAttributes)", "bloom_filter(0.01)", 1),
    ("idx_scope_attr_key", "mapKeys(ScopeAttributes)", "bloom_filter(0.01)", 1),
    ("idx_scope_attr_value", "mapValues(ScopeAttributes)", "bloom_filter(0.01)", 1),
    ("idx_log_attr_key", "mapKeys(LogAttributes)", "bloom_filter(0.01)", 1),
    ("idx_log_attr_value", "mapValues(LogAttributes)", "bloom_filter(0.01)", 1),
    ("idx_lower_body", "lower(Body)", "tokenbf_v1(32768, 3, 0)", 8),
)


def _nested_columns(name: str, parts: tuple) -> tuple[tuple[str, str], ...]:
    return tuple((f"{name}.{part}", f"Array({kind})") for part, kind in parts)


TRACE_TYPES: tuple[tuple[str, str], ...] = (
    *((name, kind) for name, kind, _ in _TRACE_DEFS),
    *_nested_columns("Events", _EVENT_PARTS),
    *_nested_columns("Links", _LINK_PARTS),
)
"""(column, ClickHouse type) of each column the exporter writes to otel_traces, in its
insert order; a Nested column's parts are arrays, as DESCRIBE shows them."""

LOG_TYPES: tuple[tuple[str, str], ...] = tuple((name, kind) for name, kind, _ in _LOG_DEFS)
"""(column, ClickHouse type) of each column the exporter writes to otel_logs."""

TRACE_COLUMNS: tuple[str, ...] = tuple(name for name, _ in TRACE_TYPES)
"""The otel_traces columns the worker selects (and the exporter emulation inserts)."""

LOG_COLUMNS: tuple[str, ...] = tuple(name for name, _ in LOG_TYPES)
"""The otel_logs columns the worker selects (and the exporter emulation inserts)."""


def _column(name: str, kind: str, codec: str | None) -> str:
    return f"{quote_name(name)} {kind}" + (f" CODEC({codec})" if codec else "")


def _nested(name: str, parts: tuple) -> str:
    inner = ", ".join(f"{quote_name(part)} {kind}" for part, kind in parts)
    return f"{quote_name(name)} Nested({inner}) CODEC(ZSTD(1))"


def _index(name: str, expression: str, kind: str, granularity: int) -> str:
    return f"INDEX {name} {expression} TYPE {kind} GRANULARITY {granularity}"


def _ttl(expression: str, ttl_days: int | None) -> str:
    return f"TTL {expression} + toIntervalDay({int(ttl_days)})\n" if ttl_days else ""


def _table(qualified: str, lines: list[str], tail: str) -> str:
    body = ",\n    ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {qualified} (\n    {body}\n)\n{tail}"


def exporter_ddl(database: str, ttl_days: int | None = None) -> list[str]:
    """``CREATE ... IF NOT EXISTS`` statements for otel_traces, otel_traces_trace_id_ts,
    its materialized view otel_traces_trace_id_ts_mv and otel_logs in ``database``, as the
    exporter's ``create_schema: true`` makes them (``ttl_days``: its ``ttl`` in whole days).

    The database itself is not created. Run the statements in order: the view needs both
    tables."""
    if ttl_days is not None and (type(ttl_days) is not int or ttl_days < 0):
        raise ValueError(f"ttl_days must be a whole number of days >= 0, got {ttl_days!r}")
    db = quote_name(database)
    traces = f"{db}.{quote_name(TRACES_TABLE)}"
    trace_id_ts = f"{db}.{quote_name(TRACE_ID_TS_TABLE)}"
    logs = f"{db}.{quote_name(LOGS_TABLE)}"
    trace_lines = [_column(*d) for d in _TRACE_DEFS]
    trace_lines += [_nested("Events", _EVENT_PARTS), _nested("Links", _LINK_PARTS)]
    trace_lines += [_index(*i) for i in _TRACE_INDEXES]
    log_lines = [_column(*d) for d in _LOG_DEFS]
    log_lines += [
        f"{quote_name('__otel_materialized_' + key)} {_LC} "
        f"MATERIALIZED ResourceAttributes['{key}'] CODEC(ZSTD(1))"
        for key in _LOG_MATERIALIZED
    ]
    log_lines += [_index(*i) for i in _LOG_INDEXES]
    settings = "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1"
    return [
        _table(
            traces,
            trace_lines,
            "ENGINE = MergeTree()\nPARTITION BY toDate(Timestamp)\n"
            "PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))\n"
            "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)\n"
            f"{_ttl('toDateTime(Timestamp)', ttl_days)}{settings}",
        ),
        _table(
            trace_id_ts,
            [
                "`TraceId` String CODEC(ZSTD(1))",
                "`Start` SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1))",
                "`End` SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))",
            ],
            "ENGINE = AggregatingMergeTree()\nPARTITION BY toStartOfWeek(Start)\n"
            f"ORDER BY (TraceId)\n{_ttl('toDateTime(Start)', ttl_days)}{settings}",
        ),
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{quote_name(TRACE_ID_TS_VIEW)}\n"
        f"TO {trace_id_ts}\n"
        "AS SELECT TraceId, min(toDateTime(Timestamp)) AS Start, "
        "max(toDateTime(Timestamp)) AS End\n"
        f"FROM {traces}\nWHERE TraceId != ''\nGROUP BY TraceId",
        _table(
            logs,
            log_lines,
            "ENGINE = MergeTree()\nPARTITION BY toDate(Timestamp)\n"
            "PRIMARY KEY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)\n"
            "ORDER BY (toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)\n"
            f"{_ttl('toDateTime(Timestamp)', ttl_days)}{settings}",
        ),
    ]
