"""Linked turns in the writer: recording the links, and refusing forks.

Every stored span that names a previous turn (``otel_threads.previous_turn_id``) is
also recorded in ``linked_turns``, in its own transaction (`RECORD_LINKS`). With
``on_fork="reject"`` a `ForkGate` screens each group before it is inserted: a turn
that names a previous turn which another turn already answers (a fork: "regenerate",
"edit message") is refused, with its spans in the same group and any that arrive
later. Forks are decided in the writer thread, the one that commits, so two
concurrent exports cannot both win.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["FORK_POLICIES", "RECORD_LINKS", "ForkGate"]

#: What the writer does with a turn that answers a turn another turn already answers.
FORK_POLICIES = ("allow", "reject")

#: The linked turns of the registered ``__batch`` not recorded yet.
RECORD_LINKS = """
    INSERT INTO linked_turns
    SELECT DISTINCT b.trace_id, b.span_id, b.previous_turn_id, b.thread_id, b.start_time
    FROM __batch b
    WHERE b.previous_turn_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM linked_turns l
                      WHERE l.trace_id = b.trace_id AND l.turn_id = b.span_id)
"""

# Turn spans of the group that fork: they name a previous turn that a stored turn, or
# one earlier in the group, already names (a redelivered span is not a fork of itself).
_FORKS = """
    WITH cand AS (
        SELECT b.trace_id, b.span_id, b.previous_turn_id, b.arrival
        FROM __forks b
        WHERE b.previous_turn_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM linked_turns l
                          WHERE l.trace_id = b.trace_id AND l.turn_id = b.span_id)
    ),
    stored AS (
        SELECT previous_turn_id, min(turn_id) AS answered_by
        FROM linked_turns
        WHERE previous_turn_id IN (SELECT previous_turn_id FROM cand)
        GROUP BY previous_turn_id
    ),
    first AS (
        SELECT previous_turn_id, arg_min(span_id, arrival) AS span_id
        FROM cand
        GROUP BY previous_turn_id
    )
    SELECT DISTINCT c.trace_id, c.span_id, c.previous_turn_id,
           coalesce(s.answered_by, f.span_id) AS answered_by
    FROM cand c
    JOIN first f ON f.previous_turn_id = c.previous_turn_id
    LEFT JOIN stored s ON s.previous_turn_id = c.previous_turn_id
    WHERE s.answered_by IS NOT NULL OR c.span_id <> f.span_id
"""


class ForkGate:
    """The turns refused so far (``rejected_turns``), and the screening of a group."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.refused = {r[0] for r in con.execute("SELECT turn_id FROM rejected_turns").fetchall()}

    def screen(
        self, con: duckdb.DuckDBPyConnection, tables: list[pa.Table], received_at_us: int
    ) -> tuple[pa.Table, list[tuple[int, str | None]], set[str]]:
        """Screen a group of span tables (in arrival order), inside the transaction
        that stores them: records the new refusals in ``rejected_turns``. Returns the
        rows to store, per table (rows refused, why), and the turns newly refused
        (for `committed`, once the transaction is)."""
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        forks: list[tuple[str, str, str, str]] = []
        if table.column("previous_turn_id").null_count < table.num_rows:
            arrival = pa.array(range(table.num_rows), pa.int64())
            con.register(
                "__forks",
                table.select(["trace_id", "span_id", "previous_turn_id"]).append_column(
                    "arrival", arrival
                ),
            )
            try:
                forks = con.execute(_FORKS).fetchall()
            finally:
                con.unregister("__forks")
        refused = self.refused | {span_id for _, span_id, _, _ in forks}
        nothing = [(0, None)] * len(tables)
        if not refused:
            return table, nothing, set()
        value_set = pa.array(sorted(refused), pa.string())
        drop = pc.fill_null(
            pc.or_(
                pc.or_(
                    pc.is_in(table.column("span_id"), value_set=value_set),
                    pc.is_in(table.column("turn_id"), value_set=value_set),
                ),
                pc.is_in(table.column("parent_span_id"), value_set=value_set),
            ),
            False,
        )
        if not pc.any(drop).as_py():
            return table, nothing, set()
        if forks:
            at = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=received_at_us)
            con.executemany(
                "INSERT INTO rejected_turns VALUES (?, ?, ?, ?, ?)",
                [[t, s, p, a, at] for t, s, p, a in forks],
            )
        reasons = {s: (p, a) for _, s, p, a in forks}
        outcomes, start = [], 0
        for part in tables:
            mask = drop.slice(start, part.num_rows)
            start += part.num_rows
            rejected = pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
            outcomes.append(
                (rejected, self._why(part.filter(mask), rejected, reasons) if rejected else None)
            )
        return table.filter(pc.invert(drop)), outcomes, set(reasons)

    def committed(self, refused: set[str]) -> None:
        self.refused |= refused

    def _why(self, dropped: pa.Table, rejected: int, reasons: dict[str, tuple[str, str]]) -> str:
        ids = {
            v
            for name in ("span_id", "turn_id", "parent_span_id")
            for v in dropped.column(name).to_pylist()
            if v
        }
        notes = [
            f"turn {turn} names previous turn {p}, which turn {a} already answers"
            for turn, (p, a) in sorted(reasons.items())
            if turn in ids
        ]
        earlier = sorted((ids & self.refused) - reasons.keys())
        if earlier:
            notes.append("spans of turns refused earlier: " + ", ".join(earlier))
        return f"{rejected} spans of forking turns refused (on_fork=reject): " + "; ".join(notes)
