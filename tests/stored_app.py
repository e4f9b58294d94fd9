"""A test application whose spans reach a real collector in the order a test chooses."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_threads import ThreadSpanProcessor
from otel_threads.collector import Collector
from otel_threads.store.sqlfiles import DERIVED
from otel_threads.testing import SequentialIdGenerator

#: The views whose rows the store keeps in a derived table (``<view>_mat``, derived by
#: ``derive_<view>``): equivalence tests compare each with a derivation from scratch.
KEPT_VIEWS = tuple(table.removesuffix("_mat") for table, _, _ in DERIVED)
_BY_TRACE = {table.removesuffix("_mat") for table, _, key in DERIVED if key == "trace_id"}


def kept_sql(view: str) -> str:
    """The rows the store keeps for ``view`` (in ``<view>_mat``), as a derivation from
    scratch gives them: without the number of their trace, which the tables of rows per
    trace carry besides (otel_threads.store.trace_numbers; test_trace_numbers checks it)."""
    columns = "* EXCLUDE (trace_n)" if view in _BY_TRACE else "*"
    return f"SELECT {columns} FROM {view}_mat ORDER BY ALL"


#: The turns of ``turns_mat`` that ``turn_keys`` lacks: none (otel_threads.store.turn_keys
#: keeps a superset of them, which refreshes look turns up in).
UNCOVERED_TURNS = (
    "SELECT thread_id, turn_id FROM turns_mat EXCEPT SELECT thread_id, turn_id FROM turn_keys"
)


def assert_turn_keys_cover(con) -> None:
    """Every (thread, turn) of ``turns_mat`` is in ``turn_keys``."""
    missing = con.execute(UNCOVERED_TURNS).fetchall()
    assert missing == [], f"turns_mat's pairs not in turn_keys: {missing[:5]}"


class App:
    """A service: its own provider (sequential ids from ``first``), spans kept in memory
    until `send` exports the chosen ones (so tests control the delivery order)."""

    def __init__(self, first: int = 1, marks: bool = True, service: str = "app") -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(
            id_generator=SequentialIdGenerator(first, first_trace_id=first),
            resource=Resource.create({"service.name": service}),
        )
        if marks:
            self.provider.add_span_processor(ThreadSpanProcessor(tracer_provider=self.provider))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("app")

    def spans(self, names: list[str] | None = None) -> list:
        return [s for s in self.memory.get_finished_spans() if names is None or s.name in names]

    def export(self, c: Collector, spans: list):
        """One OTLP/gRPC export of ``spans``; returns the collector's response."""
        import grpc
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        target = c.endpoints.grpc.split("://", 1)[-1]
        with grpc.insecure_channel(target, [("grpc.enable_http_proxy", 0)]) as channel:
            return trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                encode_spans(spans), timeout=30
            )

    def send(self, c: Collector, names: list[str] | None = None) -> None:
        spans = self.spans(names)
        token = c.config.token
        exporter = OTLPSpanExporter(
            endpoint=c.endpoints.grpc,
            insecure=True,
            headers={"authorization": f"Bearer {token}"} if token else None,
        )
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()


def sid(n: int) -> str:
    return format(n, "016x")
