"""`SettingAside`: a trace that does not derive (bad data: a cast, a JSON path, a value
out of range, a thread too large for the memory limit) is set aside, recorded in
``derive_errors`` and taken off the queue; every other trace goes on
(otel_threads.store.derive). A mixin of `Deriver`: it uses its ``con``, ``db``,
``_in``, ``_drop_temps``, ``_claimed``, ``_claim``, ``_transaction``, ``_derive`` and
``set_aside_total``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb

from otel_threads.store.memory_budget import indexes_crowd, out_of_memory
from otel_threads.store.scoped import Scoped

__all__ = ["SettingAside", "data_error"]

_logger = logging.getLogger("otel_threads.store.derive")

#: Traces set aside that are logged as warnings; later ones are counted (and debug-logged).
_LOGGED_SET_ASIDES = 10
#: Errors of the store itself rather than of the data being derived: nothing is set
#: aside for them (every trace would fail alike); the queue keeps the traces. Running
#: out of memory (DuckDB's --memory-limit) is not one of them: the thread that needs
#: more is set aside (derive_errors says so), and every other goes on; unless the
#: store's budget raises the limit, or its indexes hold most of the memory
#: (`SettingAside._memory_taken`).
_STORE_ERRORS = (
    duckdb.IOException,
    duckdb.FatalException,
    duckdb.InternalException,
    duckdb.InterruptException,
    duckdb.TransactionException,
    duckdb.ConnectionException,
    duckdb.CatalogException,
    duckdb.BinderException,
    duckdb.ParserException,
)


def data_error(exc: BaseException) -> bool:
    """Whether a failed derivation failed on the data it read (a cast, a JSON path, a
    value out of range): a trace that raises it is set aside, the others go on."""
    return isinstance(exc, duckdb.Error) and not isinstance(exc, _STORE_ERRORS)


class SettingAside(Scoped):
    """Which traces to derive apart, and setting aside those that fail."""

    #: traces set aside since the deriver started (`set_aside`)
    set_aside_total: int
    #: re-derive traces and take them off the queue, in one transaction (`Deriver`)
    _derive: Callable[[list[str]], None]
    #: of a store's deriver: DuckDB ran out of memory; whether the store's memory budget
    #: raised the limit (`IndexMemory.memory_short`), so that no trace is at fault
    memory_short: Callable[[], bool] | None = None

    def _suspects(self, traces: list[str]) -> list[str]:
        """Those of ``traces`` set aside before, or of a thread that has a trace set aside."""
        if not self.con.execute("SELECT 1 FROM derive_errors LIMIT 1").fetchall():
            return []
        in_traces, in_numbers = self._in("trace_id", traces), self._in_traces(traces)
        return self._first_column(
            f"SELECT trace_id FROM derive_errors WHERE {in_traces} UNION "
            f"SELECT trace_id FROM {self.db}.spans_raw WHERE {in_numbers} AND thread_id IN "
            f"(SELECT thread_id FROM derive_errors) UNION "
            f"SELECT trace_id FROM {self.db}.span_threads_mat WHERE {in_numbers} "
            f"AND thread_id IN (SELECT thread_id FROM derive_errors)"
        )

    def _derive_or_split(self, traces: list[str]) -> None:
        try:
            self._derive(traces)
        except duckdb.Error as exc:
            if not data_error(exc) or self._memory_taken(exc):
                raise
            if len(traces) == 1:
                self.set_aside(traces[0], exc)
                return
            half = len(traces) // 2
            self._derive_or_split(traces[:half])
            self._derive_or_split(traces[half:])

    def _memory_taken(self, exc: duckdb.Error) -> bool:
        """Whether ``exc`` is DuckDB out of memory through no trace's fault: the store's
        memory budget raised the limit for it (``--memory-limit auto`` below its cap), or
        the store's indexes hold over half of it (otel_threads.store.memory_budget). Then
        none is set aside; the queue keeps them all for the next try (with the higher
        limit, or after a checkpoint, which frees the indexes)."""
        if not out_of_memory(str(exc)):
            return False
        if self.memory_short is not None and self.memory_short():
            return True  # (the budget raised the limit: the file opens again with it)
        try:
            return indexes_crowd(self.con)
        except duckdb.Error:
            return False

    def set_aside(self, trace: str, exc: Exception) -> None:
        """Record that ``trace`` does not derive, and take it off the queue: its rows in
        the derived tables stay as they were until new data for it arrives."""
        message = " ".join(str(exc).split())[:2000]
        with self._claimed(), self._transaction() as con:
            self._claim("trace", [trace])
            con.execute(
                f"""
                CREATE TEMP TABLE _failed AS
                SELECT ?::VARCHAR AS trace_id,
                       (SELECT min(thread_id) FROM {self.db}.span_threads_mat
                        WHERE trace_id = $1) AS derived_thread,
                       (SELECT min(thread_id) FROM {self.db}.spans_raw
                        WHERE trace_id = $1) AS own_thread,
                       (SELECT min(first_failed_at) FROM derive_errors
                        WHERE trace_id = $1) AS first_failed_at,
                       (SELECT coalesce(sum(failures), 0) FROM derive_errors
                        WHERE trace_id = $1) AS failures""",
                [trace],
            )
            con.execute("DELETE FROM derive_errors WHERE trace_id = ?", [trace])
            con.execute(
                """
                INSERT INTO derive_errors
                SELECT trace_id, coalesce(derived_thread, own_thread), ?,
                       coalesce(first_failed_at, now()::TIMESTAMP), now()::TIMESTAMP,
                       failures + 1
                FROM temp._failed""",
                [message],
            )
            con.execute("DELETE FROM derive_queue WHERE trace_id = ?", [trace])
        self.set_aside_total += 1
        log = _logger.warning if self.set_aside_total <= _LOGGED_SET_ASIDES else _logger.debug
        log(
            "trace %s does not derive and is set aside (the table derive_errors lists it; "
            "it is tried again when new data for it arrives): %s",
            trace,
            message,
        )
