"""What the writer answers: `Written` for a committed table, and the errors a caller
meets (`StoreClosed`, `StoreUnavailable`, `Overloaded`)."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import pyarrow as pa

from otel_threads.store.health import KINDS as FAULT_KINDS
from otel_threads.store.health import Fault

__all__ = ["Overloaded", "StoreClosed", "StoreUnavailable", "Written"]


class StoreClosed(RuntimeError):
    """The store is closed, or closing: no more reads."""


class StoreUnavailable(StoreClosed):
    """The store cannot commit durably now (a `Fault`): nothing was stored; retry later."""

    def __init__(self, fault: Fault, retry_after_s: float) -> None:
        super().__init__(
            f"the store is unavailable: {FAULT_KINDS[fault.kind]}; retry in {retry_after_s:g}s"
        )
        self.fault = fault
        self.retry_after_s = retry_after_s


class Overloaded(RuntimeError):
    """Too many rows are waiting for a commit; retry later."""

    def __init__(
        self,
        pending: int,
        limit: int,
        retry_after_s: float,
        unit: str = "rows waiting for a commit",
    ) -> None:
        super().__init__(
            f"the collector holds {pending} {unit} (limit {limit}); retry in {retry_after_s:g}s"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Written:
    """What became of one submitted table once its transaction committed."""

    rows: int  #: rows submitted
    rejected: int = 0  #: rows refused (spans of a forking turn, with on_fork="reject")
    error: str | None = None  #: why, when rows were refused


class _Item:
    __slots__ = ("error", "future", "kind", "rejected", "rows", "table")

    def __init__(self, kind: str, table: pa.Table) -> None:
        self.kind = kind
        self.table = table
        self.rows = table.num_rows
        self.rejected = 0
        self.error: str | None = None
        self.future: Future[Written] = Future()
