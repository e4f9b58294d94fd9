"""The OTLP decode step: export requests -> Arrow tables for the ``spans`` and ``logs`` tables.

Shared by the collector's receivers (gRPC, HTTP protobuf and JSON) and by the
in-process exporter, so every way in stores the same rows. Pure functions: no
I/O, no logging, no shared mutable state; safe to call from any thread or process.

Contract:

- Every function returns a :class:`DecodedBatch` or raises :class:`DecodeError`
  (a ``ValueError``) whose message says what is wrong; nothing else escapes,
  whatever the input bytes. (Passing the wrong *type* is a ``TypeError``.)
- ``DecodeError`` means the request as a whole cannot be decoded: not protobuf,
  not JSON, not the OTLP JSON shape (the message names where), or invalid UTF-8
  in any string (protobuf parsers refuse those messages too). Receivers answer
  INVALID_ARGUMENT / HTTP 400.
- A span is *rejected* (left out, counted, the rest kept) when its trace_id is not
  16 bytes or all zeros, its span_id not 8 bytes or all zeros, its parent_span_id
  neither empty nor 8 bytes, or a time is past int64 (year 2262); a log record
  when its trace_id/span_id is neither empty nor of the right length.
  ``DecodedBatch.error`` names the first problems, for OTLP ``partial_success``.
- Columns follow :data:`SPAN_SCHEMA` / :data:`LOG_SCHEMA`. Ids are lowercase hex;
  an all-zero parent_span_id (and log ids) become NULL. Times are naive UTC
  ``timestamp('us')`` plus the exact nanoseconds; end_time and duration_ms are
  NULL when end_time_unix_nano is 0. Empty trace_state, status_message,
  scope_name/version, severity_text become NULL. Unknown enum numbers become
  'UNSPECIFIED' / 'UNSET'; uint32 counts past int32 are clamped.
- attributes, events, links, resource/scope attributes and log bodies are JSON
  text that keeps every OTLP value kind apart: string, bool, int (integer),
  double (always with '.' or 'e'; NaN/inf as ``{"$double": "NaN"}``), bytes
  (``{"$bytes": base64}``), array, kvlist (object), empty (null). Keys starting
  with "$" get one more "$". Values nested more than :data:`MAX_DEPTH` arrays or
  kvlists deep become ``{"$truncated": "depth"}``. A repeated key keeps its last
  value. A log body that is unset or empty is NULL.
- Derived from a span's own attributes: ``thread_id`` (the first of
  :data:`THREAD_ID_KEYS` holding a non-empty string), ``turn_id``, ``is_turn``
  (bool ``otel_threads.is_turn``, else bool ``wandb.is_turn``, else NULL),
  ``previous_turn_id``. Inheriting from ancestors is the views' job.
  ``project`` is resource ``otel_threads.project``, else
  ``openinference.project.name``, else ``service.name``.
- ``record_id`` of a log is a blake2b-128 hash of its content and its
  resource/scope: a redelivered record (protobuf or JSON) gets the same id.

Example::

    try:
        batch = decode_traces_protobuf(body)
    except DecodeError as exc:
        return http_400(str(exc))
    writer.write_spans(batch.table)  # then answer with partial_success:
    rejected, message = batch.rejected, batch.error
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_threads.otlp import jsonformat as _json
from otel_threads.otlp import protobuf as _protobuf
from otel_threads.otlp.tables import LOG_SCHEMA, SPAN_SCHEMA, DecodedBatch, log_table, span_table
from otel_threads.otlp.values import MAX_DEPTH, THREAD_ID_KEYS, DecodeError, Rejections

__all__ = [
    "LOG_SCHEMA",
    "MAX_DEPTH",
    "SPAN_SCHEMA",
    "THREAD_ID_KEYS",
    "DecodeError",
    "DecodedBatch",
    "decode_logs_json",
    "decode_logs_protobuf",
    "decode_logs_request",
    "decode_traces_json",
    "decode_traces_protobuf",
    "decode_traces_request",
]


def _spans(rows: list, scopes: list, scope_counts: list, rejections: Rejections) -> DecodedBatch:
    table = span_table(rows, scopes, scope_counts)
    return DecodedBatch(table, len(rows), rejections.count, rejections.error())


def _logs(rows: list, scopes: list, scope_counts: list, rejections: Rejections) -> DecodedBatch:
    table = log_table(rows, scopes, scope_counts)
    return DecodedBatch(table, len(rows), rejections.count, rejections.error())


def _bytes(data: object) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"request body must be bytes, got {type(data).__name__}")


def decode_traces_protobuf(data: bytes) -> DecodedBatch:
    """Decode the bytes of an OTLP ``ExportTraceServiceRequest`` (gRPC or HTTP protobuf)."""
    table, rejections = _protobuf.trace_table(_bytes(data))
    return DecodedBatch(table, table.num_rows, rejections.count, rejections.error())


def decode_traces_json(data: bytes) -> DecodedBatch:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest`` (UTF-8 bytes).

    Follows the OTLP JSON encoding: hex ids, lowerCamelCase keys (snake_case is
    accepted too), 64-bit integers as numbers or strings, enums as integers (or
    their names).
    """
    return _spans(*_json.trace_rows(_bytes(data)))


def decode_traces_request(request: ExportTraceServiceRequest) -> DecodedBatch:
    """Decode an already parsed ``ExportTraceServiceRequest`` (gRPC servicer, exporter).

    The message is re-serialized (fast, in C) and read by the same code as
    :func:`decode_traces_protobuf`, so every path yields identical rows.
    """
    if not isinstance(request, ExportTraceServiceRequest):
        raise TypeError(f"expected ExportTraceServiceRequest, got {type(request).__name__}")
    return decode_traces_protobuf(request.SerializeToString())


def decode_logs_protobuf(data: bytes) -> DecodedBatch:
    """Decode the bytes of an OTLP ``ExportLogsServiceRequest``."""
    return _logs(*_protobuf.log_rows(_bytes(data)))


def decode_logs_json(data: bytes) -> DecodedBatch:
    """Decode an OTLP/JSON ``ExportLogsServiceRequest`` (see :func:`decode_traces_json`)."""
    return _logs(*_json.log_rows(_bytes(data)))


def decode_logs_request(request: ExportLogsServiceRequest) -> DecodedBatch:
    """Decode an already parsed ``ExportLogsServiceRequest``."""
    if not isinstance(request, ExportLogsServiceRequest):
        raise TypeError(f"expected ExportLogsServiceRequest, got {type(request).__name__}")
    return decode_logs_protobuf(request.SerializeToString())
