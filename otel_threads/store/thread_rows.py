"""`ThreadRows`: a refresh's rows of the threads its traces touch (otel_threads.store.derive
takes the batch and derives its span threads; this derives what follows from them).

What a new turn adds is derived from its own traces; what the thread already had is read
back from the derived tables, narrow, never from its spans again:

- turns: the facts of each turn the refresh's traces touch (``turn_facts``, over the
  spans of those turns) with the facts of the thread's other turns as ``turns_mat``
  holds them; ``derive_turns`` numbers and links them all (one row per turn);
- message keys: derived for the refresh's traces, read back for the thread's others
  (``message_keys_mat``, one narrow row per message); ``transcript_rows`` chooses and
  numbers the thread's messages from them, and only the rows that are new or moved are
  written: new ones with their texts (``derive_transcript``, over the messages of the
  refresh's traces), moved ones (renumbered, another branch) updated in place;
- threads: ``derive_threads`` over the thread's turns and span threads, and of its
  transcript only the two rows it reads (the first user message, the last reply).

Late and out-of-order data gives the rows a derivation from scratch gives: a turn's facts
are derived whole whenever any of its spans is in the refresh (with every trace that holds
one of its spans), and every row that depends on the order of the thread is derived over
the whole thread, from the kept narrow rows.
"""

from __future__ import annotations

import pyarrow as pa

from otel_threads.store.shared_views import SharedViews

__all__ = ["ThreadRows"]

#: What names a message of the transcript (a row of transcript_mat).
_MESSAGE = ("thread_id", "trace_id", "span_id", "direction", "position")
#: What transcript_rows decides about a message: written in place when it changes.
_PLACE = ("seq", "turn_id", "role", "thread_seq", "on_current_branch")


def _match(columns: tuple[str, ...], a: str = "n", b: str = "o") -> str:
    return " AND ".join(f"{a}.{c} IS NOT DISTINCT FROM {b}.{c}" for c in columns)


class ThreadRows(SharedViews):
    """Derives the turn, transcript and thread rows of a refresh's threads."""

    def _derive_threads(
        self, traces: list[str], touched: list[tuple[str, str | None]], old: list[str]
    ) -> None:
        """Derive the rows of the threads in ``touched`` ((thread, turn) pairs that spans of
        ``traces`` were in before or are in now; TEMP ``spans_raw`` and ``logs`` hold
        ``traces``, TEMP ``_span_threads`` their span threads as just derived, and ``old``
        are those of them that may have derived rows from before)."""
        con, db = self.con, self.db
        threads = sorted({thread for thread, _ in touched})
        in_threads = self._in("thread_id", threads)
        pairs = [(thread, turn) for thread, turn in touched if turn is not None]
        self._temp_table(
            "_touched",
            pa.table(
                {"thread_id": [t for t, _ in pairs], "turn_id": [turn for _, turn in pairs]},
                schema=pa.schema([("thread_id", pa.string()), ("turn_id", pa.string())]),
            ),
        )
        # a turn's facts follow from all of its spans: the traces that hold the other spans
        # of the touched turns come into scope too (mostly none: a turn is one trace)
        extra = sorted(
            {
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT s.trace_id FROM {db}.span_threads_mat s "
                    f"SEMI JOIN temp._touched t ON t.thread_id = s.thread_id "
                    f"AND t.turn_id = s.turn_id WHERE s.{in_threads}"
                ).fetchall()
            }
            - set(traces)
        )
        if extra:
            self._add_to_scope(extra)
        in_scope = self._in("trace_id", traces + extra)
        con.execute(
            f"CREATE TEMP TABLE span_threads_mat AS SELECT * FROM {db}.span_threads_mat "
            f"WHERE {in_threads} UNION ALL SELECT * FROM temp._span_threads "
            f"WHERE thread_id IS NULL"
        )
        self._shared_views()
        # the message keys of the threads in scope (an extra trace may hold spans of
        # other threads too: theirs stay as they are)
        if old or extra:
            con.execute(
                f"DELETE FROM {db}.message_keys_mat WHERE {self._in('trace_id', old + extra)} "
                f"AND {in_threads}"
            )
        con.execute(
            f"INSERT INTO {db}.message_keys_mat SELECT * FROM derive_message_keys "
            f"WHERE {in_threads}"
        )
        con.execute(
            f"CREATE TEMP TABLE message_keys_mat AS SELECT * FROM {db}.message_keys_mat "
            f"WHERE {in_threads}"
        )
        self._turns(in_threads)
        self._transcript(in_threads, in_scope)
        self._threads(in_threads)
        self._stamp_threads(in_threads, threads)

    def _add_to_scope(self, traces: list[str]) -> None:
        """The spans and log records of ``traces`` into TEMP ``spans_raw`` and ``logs``."""
        in_traces = self._in("trace_id", traces)
        for name in ("spans_raw", "logs"):
            self.con.execute(
                f"INSERT INTO temp.{name} SELECT * FROM {self.db}.{name} WHERE {in_traces}"
            )

    def _turns(self, in_threads: str) -> None:
        """Every turn of the threads: the touched ones' facts derived, the others' kept."""
        con, db = self.con, self.db
        con.execute(
            f"CREATE TEMP TABLE turn_facts AS SELECT f.* FROM {db}.turn_facts f "
            f"SEMI JOIN temp._touched t ON t.thread_id = f.thread_id AND t.turn_id = f.turn_id"
        )
        columns = ", ".join(
            f'o."{r[0]}"' for r in con.execute("DESCRIBE temp.turn_facts").fetchall()
        )
        con.execute(
            f"INSERT INTO temp.turn_facts SELECT {columns} FROM {db}.turns_mat o "
            f"WHERE o.{in_threads} AND NOT EXISTS (SELECT 1 FROM temp._touched t "
            f"WHERE t.thread_id = o.thread_id AND t.turn_id = o.turn_id)"
        )
        con.execute(f"CREATE TEMP TABLE turns_mat AS SELECT * FROM derive_turns WHERE {in_threads}")
        self._write_changed("turns_mat", in_threads)

    def _transcript(self, in_threads: str, in_scope: str) -> None:
        """The threads' transcript rows: the rows of the scope's traces written anew (their
        messages were just parsed), the others' moved in place, deleted when no longer
        shown, and written when newly shown (then their traces' messages are parsed too)."""
        con, db = self.con, self.db
        con.execute(
            f"CREATE TEMP TABLE transcript_rows AS SELECT * FROM {db}.transcript_rows "
            f"WHERE {in_threads}"
        )
        same_message = _match(_MESSAGE)
        con.execute(
            f"DELETE FROM {db}.transcript_mat WHERE rowid IN (SELECT o.rowid FROM "
            f"{db}.transcript_mat o WHERE o.{in_threads} AND (o.{in_scope} OR NOT EXISTS "
            f"(SELECT 1 FROM temp.transcript_rows n WHERE {same_message})))"
        )
        con.execute(
            f"UPDATE {db}.transcript_mat AS o SET "
            + ", ".join(f"{c} = n.{c}" for c in _PLACE)
            + f" FROM temp.transcript_rows n WHERE o.{in_threads} AND {same_message} "
            f"AND NOT ({_match(_PLACE)})"
        )
        con.execute(
            f"CREATE TEMP TABLE _new_rows AS SELECT * FROM temp.transcript_rows n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {db}.transcript_mat o "
            f"WHERE o.{in_threads} AND {same_message})"
        )
        shown = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT trace_id FROM temp._new_rows WHERE NOT {in_scope}"
            ).fetchall()
        ]
        if shown:  # an earlier message shown now (data out of order): its text is needed
            self._add_to_scope(shown)
            for name in ("llm_calls", "messages"):
                con.execute(f"DROP TABLE temp.{name}")
            self._shared_views()
        con.execute("DROP TABLE temp.transcript_rows")
        con.execute("ALTER TABLE temp._new_rows RENAME TO transcript_rows")
        con.execute(f"INSERT INTO {db}.transcript_mat SELECT * FROM derive_transcript")

    def _threads(self, in_threads: str) -> None:
        """The threads' rows, reading of their transcripts only what derive_threads reads:
        each thread's first user message and last reply of the current branch."""
        con, db = self.con, self.db
        first_last = " UNION ALL ".join(
            f"SELECT {agg}(rowid, seq) FILTER (WHERE role = '{role}' AND content IS NOT NULL "
            f"AND seq IS NOT NULL) FROM {db}.transcript_mat WHERE {in_threads} GROUP BY thread_id"
            for agg, role in (("arg_min", "user"), ("arg_max", "assistant"))
        )
        con.execute(
            f"CREATE TEMP TABLE transcript_mat AS SELECT * FROM {db}.transcript_mat "
            f"WHERE rowid IN ({first_last})"
        )
        con.execute(
            f"CREATE TEMP TABLE threads_mat AS SELECT * FROM derive_threads WHERE {in_threads}"
        )
        self._write_changed("threads_mat", in_threads)

    def _write_changed(self, table: str, in_threads: str) -> None:
        """Make the file's ``table`` rows of the threads in scope those of TEMP ``table``,
        writing only the rows that differ: a new turn of a long thread changes a few rows
        of it, and rewriting all of them (with their indexes) cost most of a refresh."""
        con, db = self.con, self.db
        columns = tuple(f'"{r[0]}"' for r in con.execute(f"DESCRIBE temp.{table}").fetchall())
        same = _match(columns)
        con.execute(
            f"DELETE FROM {db}.{table} WHERE rowid IN (SELECT o.rowid FROM {db}.{table} o "
            f"WHERE o.{in_threads} AND NOT EXISTS (SELECT 1 FROM temp.{table} n WHERE {same}))"
        )
        con.execute(
            f"INSERT INTO {db}.{table} SELECT * FROM temp.{table} n WHERE NOT EXISTS "
            f"(SELECT 1 FROM {db}.{table} o WHERE o.{in_threads} AND {same})"
        )

    def _stamp_threads(self, in_threads: str, threads: list[str]) -> None:
        """Give the threads just re-derived (and those that lost traces) a new version
        stamp, one number for the whole refresh (`thread_version` reads it)."""
        con, db = self.con, self.db
        version = con.execute(f"SELECT nextval('{db}.derive_version_seq')").fetchall()[0][0]
        con.execute(f"DELETE FROM {db}.thread_versions WHERE {in_threads}")
        self._temp_table("_stamped", pa.table({"thread_id": pa.array(threads, pa.string())}))
        con.execute(
            f"INSERT INTO {db}.thread_versions SELECT thread_id, ? FROM temp._stamped", [version]
        )
