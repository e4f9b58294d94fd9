"""`Links`: which traces a refresh must derive together because turns link to turns
across traces (``previous_turn_id``), followed set-wise (otel_threads.store.derive)."""

from __future__ import annotations

from collections.abc import Callable

from otel_threads.store.scoped import Scoped

__all__ = ["Links"]

#: Chains of links are followed this many steps by index lookups (the usual case: a turn
#: names a turn whose thread is known); what is left of a chain is walked in one
#: recursive statement.
_LOOKUP_STEPS = 2


class Links(Scoped):
    """The traces that chains of links tie to a refresh's traces."""

    def _linked_in(self, traces: list[str]) -> set[str]:
        """Those of ``traces`` that hold a turn without a thread id that names a previous
        turn, or a turn (or span) that such a turn names: their thread is resolved along
        chains of links, which may reach far."""
        con, db = self.con, self.db
        if not con.execute(
            f"SELECT 1 FROM {db}.linked_turns WHERE thread_id IS NULL LIMIT 1"
        ).fetchall():
            return set()
        try:
            return {
                r[0]
                for r in con.execute(f"""
                SELECT trace_id FROM {db}.linked_turns
                WHERE {self._in("trace_id", traces)} AND thread_id IS NULL
                UNION
                SELECT trace_id FROM {db}.spans_raw WHERE {self._in_traces(traces)} AND (
                    span_id IN (SELECT previous_turn_id FROM {db}.linked_turns
                                WHERE thread_id IS NULL)
                    OR turn_id IN (SELECT previous_turn_id FROM {db}.linked_turns
                                   WHERE thread_id IS NULL))""").fetchall()
            }
        finally:
            self._drop_temps()

    def _linked_traces(self, traces: set[str]) -> set[str]:
        """Traces outside ``traces`` (whose spans are in TEMP ``spans_raw``) that their
        resolution needs or affects through ``previous_turn_id`` links.

        Set-wise: a few statements however long the chains are (`_LOOKUP_STEPS` rounds
        of index lookups, then one recursive statement for the rest of the chains), and
        a loop of links ends where it closes.
        """
        con, db = self.con, self.db
        if not con.execute(f"SELECT 1 FROM {db}.linked_turns LIMIT 1").fetchall():
            return set()
        found: set[str] = set()
        # Up: a turn without a thread id takes the thread of the turn it names. When
        # that turn has a thread already, every trace of that thread comes along (the
        # chain up to its first turn lies in it); else follow its own link.
        reached = self._walk(
            {
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT previous_turn_id FROM temp.spans_raw "
                    "WHERE previous_turn_id IS NOT NULL AND thread_id IS NULL"
                ).fetchall()
            },
            lambda turns: con.execute(
                f"SELECT previous_turn_id FROM {db}.linked_turns "
                f"WHERE {self._in('turn_id', turns)} AND thread_id IS NULL AND turn_id NOT IN "
                f"(SELECT turn_id FROM {db}.turns_mat WHERE {self._in('turn_id', turns)})"
            ).fetchall(),
            f"""SELECT l.previous_turn_id FROM walk w
                JOIN {db}.linked_turns l ON l.turn_id = w.turn_id
                WHERE l.thread_id IS NULL
                  AND NOT EXISTS (SELECT 1 FROM {db}.turns_mat m WHERE m.turn_id = l.turn_id)""",
        )
        if reached:
            in_reached = self._in("turn_id", reached)
            found |= {
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT trace_id FROM {db}.span_threads_mat WHERE thread_id IN "
                    f"(SELECT thread_id FROM {db}.turns_mat WHERE {in_reached})"
                ).fetchall()
            }
            found |= {
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT trace_id FROM {db}.linked_turns WHERE {in_reached} "
                    f"AND thread_id IS NULL AND turn_id NOT IN "
                    f"(SELECT turn_id FROM {db}.turns_mat WHERE {in_reached})"
                ).fetchall()
            }
        # Down: turns without a thread id that name a turn of these traces, and the
        # turns that name those, and so on: their thread may have just become known.
        below = self._walk(
            {
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT turn_id FROM {db}.linked_turns "
                    "WHERE thread_id IS NULL AND ("
                    "previous_turn_id IN (SELECT span_id FROM temp.spans_raw) "
                    "OR previous_turn_id IN (SELECT turn_id FROM temp.spans_raw))"
                ).fetchall()
            },
            lambda turns: con.execute(
                f"SELECT turn_id FROM {db}.linked_turns WHERE thread_id IS NULL "
                f"AND {self._in('previous_turn_id', turns)}"
            ).fetchall(),
            f"""SELECT l.turn_id FROM walk w
                JOIN {db}.linked_turns l ON l.previous_turn_id = w.turn_id
                WHERE l.thread_id IS NULL""",
        )
        if below:
            found |= {
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT trace_id FROM {db}.linked_turns WHERE thread_id IS NULL "
                    f"AND {self._in('turn_id', below)}"
                ).fetchall()
            }
        return found - traces

    def _walk(
        self, start: set[str], step: Callable[[set[str]], list[tuple[str]]], recursive_step: str
    ) -> set[str]:
        """The turn ids reached from ``start`` (start included) along links:
        ``step(turns)`` selects the next turn ids by index lookups, for `_LOOKUP_STEPS`
        rounds; the rest of the way is one recursive statement whose ``recursive_step``
        selects the next turn ids out of the CTE ``walk(turn_id)``. It is a UNION, which
        visits each turn once: a loop of links ends where it closes."""
        seen: set[str] = set()
        wanted = set(start)
        for _ in range(_LOOKUP_STEPS):
            if not wanted:
                return seen
            seen |= wanted
            wanted = {r[0] for r in step(wanted)} - seen
        if not wanted:
            return seen
        values = self._values(wanted)
        return seen | {
            r[0]
            for r in self.con.execute(f"""
            WITH RECURSIVE walk(turn_id) AS (
                SELECT v FROM temp.{values}
                UNION
                {recursive_step}
            )
            SELECT turn_id FROM walk""").fetchall()
        }
