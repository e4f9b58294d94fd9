"""`ThreadRows`: a refresh's rows of the threads its traces touch (otel_threads.store.derive
takes the batch and derives its span threads; this derives what follows from them).

What a new turn adds is derived from its own traces; what the thread already had is read
back from the derived tables, narrow, never from its spans again:

- turns: the facts of each turn the refresh's traces touch (``turn_facts``, over the
  spans of those turns) with the facts of the thread's other turns as ``turns_mat``
  holds them; ``derive_turns`` numbers and links them all (one row per turn);
- attribute values (what the threads filter matches) and OTLP evaluation results
  (annotations) per trace, like message keys;
- message keys: derived for the refresh's traces, read back for the thread's others
  (``message_keys_mat``, one narrow row per message); ``transcript_rows`` chooses and
  numbers the thread's messages from them, and only the rows that are new or moved are
  written: new ones with their texts (``derive_transcript``, over the messages of the
  refresh's traces), moved ones (renumbered, another branch) updated in place;
- threads: ``derive_threads`` over the thread's turns, its spans in no turn, and of its
  transcript only the two rows it reads (the first user message, the last reply).

Most refreshes only add to a thread: new turns after its last one, new calls after its
last one, nothing linked. Such a thread is derived from its tail (otel_threads.store.tails,
`Tails`): its earlier rows are neither read whole nor rewritten. Any other thread is
derived whole, as below; either way its row of ``thread_tails_mat`` follows.

Late and out-of-order data gives the rows a derivation from scratch gives: a turn's facts
are derived whole whenever any of its spans is in the refresh (with every trace that holds
one of its spans), and every row that depends on the order of the thread is derived over
the whole thread, from the kept narrow rows.
"""

from __future__ import annotations

import pyarrow as pa

from otel_threads.store import turn_keys
from otel_threads.store.changed_rows import match, write_changed
from otel_threads.store.tails import Tails

__all__ = ["ThreadRows"]

#: The derived tables of rows per trace (each of the view derive_<name>), deleted for the
#: traces a refresh derives again and inserted anew (message keys first: a refresh also
#: reads them back, `_tail_keys`).
_PER_TRACE = ("message_keys_mat", "thread_attributes_mat", "call_responses_mat", "annotations_mat")
#: What names a message of the transcript (a row of transcript_mat).
_MESSAGE = ("thread_id", "trace_id", "span_id", "direction", "position")
#: What transcript_rows decides about a message: written in place when it changes.
_PLACE = ("seq", "turn_id", "role", "thread_seq", "on_current_branch")


class ThreadRows(Tails):
    """Derives the turn, transcript and thread rows of a refresh's threads."""

    def _derive_threads(
        self,
        traces: list[str],
        touched: list[tuple[str, str | None]],
        old: list[str],
        renewed: set[str],
    ) -> None:
        """Derive the rows of the threads in ``touched`` ((thread, turn) pairs that spans of
        ``traces`` were in before or are in now; TEMP ``spans_raw`` and ``logs`` hold
        ``traces``, TEMP ``_span_threads`` their span threads as just derived, ``old`` are
        those of them that may have derived rows from before, and ``renewed`` the threads
        those were in or are in)."""
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
        known = self._known_turns(pairs)
        reached = self._reached(known)
        scope = set(traces)
        extra = sorted({trace for trace, _ in reached} - scope)
        if extra:
            self._add_to_scope(extra)
        # the span threads of the scope's traces (of the threads' spans in no turn, what
        # derive_threads counts besides its turns' spans: below, for the threads derived
        # whole; thread_tails_mat counts the others')
        con.execute("CREATE TEMP TABLE span_threads_mat AS SELECT * FROM temp._span_threads")
        if extra:
            self._add_span_threads(f"o.{in_threads} AND o.{self._in_traces(extra)}")
        self._shared_views()
        con.execute(
            "CREATE TEMP TABLE _new_keys AS "
            + self._numbered(f"SELECT * FROM derive_message_keys WHERE {in_threads}")
        )
        con.execute(
            f"CREATE TEMP TABLE turn_facts AS SELECT f.* FROM {db}.turn_facts f "
            f"SEMI JOIN temp._touched t ON t.thread_id = f.thread_id AND t.turn_id = f.turn_id"
        )
        # threads whose traces in scope are all new to them and add turns after all of
        # theirs: derived from their tails (`_tails`), the others whole
        grown = renewed | {thread for trace, thread in reached if trace not in scope}
        grown |= {thread for thread, turn in touched if turn is None}
        tails = self._tails([t for t in threads if t not in grown])
        tailed = set(tails)
        whole = [t for t in threads if t not in tailed]
        in_whole = self._in("thread_id", whole) if whole else ""
        if whole:
            self._add_span_threads(f"o.{in_whole} AND o.turn_id IS NULL")
        # the threads' message keys, attribute values and OTLP annotations (of an extra
        # trace, only theirs)
        if old or extra:
            in_again = self._in_traces(old + extra)
            for table in _PER_TRACE:
                con.execute(f"DELETE FROM {db}.{table} WHERE {in_again} AND {in_threads}")
        for table in _PER_TRACE[1:]:  # (message keys: below)
            view = f"derive_{table.removesuffix('_mat')}"
            con.execute(
                f"INSERT INTO {db}.{table} "
                + self._numbered(f"SELECT * FROM {view} WHERE {in_threads}")
            )
        con.execute(
            f"CREATE TEMP TABLE message_keys_mat AS SELECT * FROM {db}.message_keys_mat "
            f"WHERE {in_whole or 'false'}"
        )
        if tails:
            self._tail_keys()
        con.execute(f"INSERT INTO {db}.message_keys_mat SELECT * FROM temp._new_keys")
        if whole:
            con.execute(
                f"INSERT INTO temp.message_keys_mat SELECT * FROM temp._new_keys WHERE {in_whole}"
            )
        self._turns(in_whole, bool(tails))
        self._add_turn_keys(set(pairs) - set(known))
        self._transcript(in_whole, traces + extra, bool(tails))
        self._threads(in_threads, in_whole, bool(tails))
        self._thread_tails(in_threads, bool(whole), bool(tails))
        self._stamp_threads(in_threads, threads)

    def _known_turns(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Those of the turns ``pairs`` ((thread, turn)) that ``turns_mat`` may hold: the
        pairs ``turn_keys`` holds (otel_threads.store.turn_keys, a superset of
        ``turns_mat``'s), looked up through each generation's index by turn id."""
        if not pairs:
            return []
        touched = set(pairs)
        turns = self._in("turn_id", sorted({turn for _, turn in pairs}))
        return [
            (thread, turn)
            for thread, turn in self.con.execute(
                f"SELECT DISTINCT thread_id, turn_id FROM {self.db}.turn_keys WHERE {turns}"
            ).fetchall()
            if (thread, turn) in touched
        ]

    def _reached(self, known: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(trace, thread) of the file's span threads in the turns ``known`` ((thread,
        turn), `_known_turns`): a turn's facts follow from all of its spans, so the traces
        that hold its other spans come into scope too (mostly none: a turn is one trace).
        Only a turn that turns_mat holds can have spans derived before (each pair of
        span_threads_mat is a turn of turns_mat, and the refresh writes turns_mat after
        this): their span threads are read through the thread_id index; a join of every
        touched turn with the whole of span_threads_mat read two columns of every derived
        span."""
        if not known:
            return []
        touched = set(known)
        threads = self._in("thread_id", sorted({thread for thread, _ in known}))
        return [
            (trace, thread)
            for trace, thread, turn in self.con.execute(
                f"SELECT DISTINCT trace_id, thread_id, turn_id FROM {self.db}.span_threads_mat "
                f"WHERE {threads} AND {self._in('turn_id', sorted({t for _, t in known}))}"
            ).fetchall()
            if (thread, turn) in touched
        ]

    def _add_turn_keys(self, new: set[tuple[str, str]]) -> None:
        """Add to ``turn_keys`` those of the pairs ``new`` (touched, not found there) that
        the refresh wrote to ``turns_mat`` (TEMP ``turns_mat`` holds them)."""
        if not new:
            return
        self._temp_table(
            "_new_turn_keys",
            pa.table(
                {"thread_id": [t for t, _ in new], "turn_id": [turn for _, turn in new]},
                schema=pa.schema([("thread_id", pa.string()), ("turn_id", pa.string())]),
            ),
        )
        turn_keys.add(
            self.con,
            self.db,
            "SELECT DISTINCT o.turn_id, o.thread_id FROM temp.turns_mat o "
            "SEMI JOIN temp._new_turn_keys n ON n.thread_id = o.thread_id "
            "AND n.turn_id = o.turn_id",
        )

    def _add_span_threads(self, where: str) -> None:
        """The file's span threads ``o`` where ``where`` into TEMP ``span_threads_mat``, but
        those it holds already."""
        self.con.execute(
            f"INSERT INTO temp.span_threads_mat SELECT * FROM {self.db}.span_threads_mat o "
            f"WHERE {where} AND NOT EXISTS (SELECT 1 FROM temp.span_threads_mat n "
            f"WHERE n.trace_id = o.trace_id AND n.span_id = o.span_id)"
        )

    def _add_to_scope(self, traces: list[str]) -> None:
        """The spans and log records of ``traces`` into TEMP ``spans_raw`` and ``logs``."""
        in_traces = self._in_traces(traces)
        for name in ("spans_raw", "logs"):
            self.con.execute(
                f"INSERT INTO temp.{name} SELECT * FROM {self.db}.{name} WHERE {in_traces}"
            )

    def _turns(self, in_whole: str, tails: bool) -> None:
        """Every turn of the threads derived whole (``in_whole``, '' for none): the touched
        ones' facts derived, the others' kept; and the new turns of the threads in
        ``_tails`` (when ``tails``), numbered on from the turn before them."""
        con, db = self.con, self.db
        if in_whole:
            columns = ", ".join(
                f'o."{r[0]}"' for r in con.execute("DESCRIBE temp.turn_facts").fetchall()
            )
            con.execute(
                f"INSERT INTO temp.turn_facts SELECT {columns} FROM {db}.turns_mat o "
                f"WHERE o.{in_whole} AND NOT EXISTS (SELECT 1 FROM temp._touched t "
                f"WHERE t.thread_id = o.thread_id AND t.turn_id = o.turn_id)"
            )
        if tails:  # (of the turn before a tail's new ones, derive_turns reads its id and
            # start: the new ones are not linked; thread_tails_mat has them)
            con.execute(
                "INSERT INTO temp.turn_facts BY NAME SELECT thread_id, last_turn_id AS turn_id, "
                "CASE WHEN NOT kept_last_turn.n THEN kept_last_turn.s END AS start_time "
                "FROM temp._tails WHERE last_turn_id IS NOT NULL"
            )
        con.execute("CREATE TEMP TABLE turns_mat AS SELECT * FROM derive_turns")
        if tails:
            con.execute(
                "DELETE FROM temp.turns_mat o WHERE EXISTS (SELECT 1 FROM temp._tails t "
                "WHERE t.thread_id = o.thread_id AND t.last_turn_id = o.turn_id)"
            )
            con.execute(
                "UPDATE temp.turns_mat AS o SET turn_index = o.turn_index + t.index_offset "
                "FROM temp._tails t WHERE t.thread_id = o.thread_id"
            )
            con.execute(
                f"INSERT INTO {db}.turns_mat SELECT * FROM temp.turns_mat o "
                f"SEMI JOIN temp._tails t ON t.thread_id = o.thread_id"
            )
        if in_whole:
            write_changed(self.con, self.db, "turns_mat", in_whole)

    def _transcript(self, in_whole: str, scope: list[str], tails: bool) -> None:
        """The threads' transcript rows. Of a thread derived whole (``in_whole``, '' for
        none): the rows of the scope's traces written anew (their messages were just
        parsed), the others' moved in place, deleted when no longer shown, and written when
        newly shown (then their traces' messages are parsed too). Of a thread in ``_tails``
        (when ``tails``): its new rows, numbered on. ``scope``: the refresh's traces."""
        con, db = self.con, self.db
        in_scope = self._in_rows("trace_id", scope)
        con.execute(f"CREATE TEMP TABLE transcript_rows AS SELECT * FROM {db}.transcript_rows")
        tail_rows = "SELECT * FROM temp.transcript_rows WHERE false"
        if tails:
            con.execute(f"""
                CREATE TEMP TABLE _tail_rows AS
                -- (no links: every row is on the current branch, seq and thread_seq agree)
                SELECT * REPLACE (seq AS thread_seq) FROM (
                    SELECT r.thread_id,
                           t.seq_offset + row_number() OVER
                               (PARTITION BY r.thread_id ORDER BY r.thread_seq) AS seq,
                           r.turn_id, r.role, r.trace_id, r.span_id, r.direction, r.position,
                           r.thread_seq, r.on_current_branch
                    FROM temp.transcript_rows r JOIN temp._tails t ON t.thread_id = r.thread_id
                    WHERE r.{in_scope})""")
            con.execute(
                "DELETE FROM temp.transcript_rows r WHERE EXISTS "
                "(SELECT 1 FROM temp._tails t WHERE t.thread_id = r.thread_id)"
            )
            tail_rows = "SELECT * FROM temp._tail_rows"
        same_message = match(_MESSAGE)
        whole_rows = "SELECT * FROM temp.transcript_rows WHERE false"
        if in_whole:
            con.execute(
                f"DELETE FROM {db}.transcript_mat WHERE rowid IN (SELECT o.rowid FROM "
                f"{db}.transcript_mat o WHERE o.{in_whole} AND (o.{in_scope} OR NOT EXISTS "
                f"(SELECT 1 FROM temp.transcript_rows n WHERE {same_message})))"
            )
            con.execute(
                f"UPDATE {db}.transcript_mat AS o SET "
                + ", ".join(f"{c} = n.{c}" for c in _PLACE)
                + f" FROM temp.transcript_rows n WHERE o.{in_whole} AND {same_message} "
                f"AND NOT ({match(_PLACE)})"
            )
            whole_rows = (
                f"SELECT * FROM temp.transcript_rows n WHERE NOT EXISTS (SELECT 1 FROM "
                f"{db}.transcript_mat o WHERE o.{in_whole} AND {same_message})"
            )
        con.execute(f"CREATE TEMP TABLE _new_rows AS {whole_rows} UNION ALL {tail_rows}")
        shown = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT trace_id FROM temp._new_rows "
                f"WHERE {self._not_in('trace_id', scope)}"
            ).fetchall()
        ]
        if shown:  # an earlier message shown now (data out of order): its text is needed
            self._add_to_scope(shown)
            in_shown = self._in_traces(shown)
            con.execute(f"DELETE FROM temp.span_threads_mat WHERE {in_shown}")
            con.execute(
                f"INSERT INTO temp.span_threads_mat SELECT * FROM {db}.span_threads_mat "
                f"WHERE {in_shown}"
            )
            for name in ("llm_calls", "messages"):
                con.execute(f"DROP TABLE temp.{name}")
            self._shared_views()
        if in_whole:  # (while TEMP tables hold all of their turns, keys and rows)
            con.execute(
                f"CREATE TEMP TABLE _whole_tails AS SELECT * FROM derive_thread_tails "
                f"WHERE {in_whole}"
            )
        con.execute("DROP TABLE temp.transcript_rows")
        con.execute("ALTER TABLE temp._new_rows RENAME TO transcript_rows")
        con.execute(f"INSERT INTO {db}.transcript_mat SELECT * FROM derive_transcript")

    def _threads(self, in_threads: str, in_whole: str, tails: bool) -> None:
        """The threads' rows. Of a thread derived whole (``in_whole``), derive_threads over
        all of its turns, reading of its transcript only what derive_threads reads (its
        first user message and last reply of the current branch). Of a thread in
        ``_tails`` (when ``tails``), derive_threads over its new turns and rows alone,
        merged with the thread's row as it was (`_merge_tails`)."""
        con, db = self.con, self.db
        first_last = " UNION ALL ".join(
            f"SELECT {agg}(rowid, seq) FILTER (WHERE role = '{role}' AND content IS NOT NULL "
            f"AND seq IS NOT NULL) FROM {db}.transcript_mat WHERE {in_whole} GROUP BY thread_id"
            for agg, role in (("arg_min", "user"), ("arg_max", "assistant"))
        )
        con.execute(
            f"CREATE TEMP TABLE transcript_mat AS SELECT * FROM {db}.transcript_mat WHERE "
            + (f"rowid IN ({first_last})" if in_whole else "false")
        )
        if tails:
            in_tails = "thread_id IN (SELECT thread_id FROM temp._tails)"
            # (their new rows' first user message and last reply with a text: numbered
            # narrow, then only those two derived with their texts)
            con.execute(f"""
                INSERT INTO temp.transcript_mat
                WITH picked AS (
                    SELECT r.thread_id,
                           min(r.seq) FILTER (WHERE r.role = 'user') AS first_seq,
                           max(r.seq) FILTER (WHERE r.role = 'assistant') AS last_seq
                    FROM temp.transcript_rows r
                    JOIN temp.messages m ON m.thread_id = r.thread_id
                        AND m.trace_id = r.trace_id AND m.span_id = r.span_id
                        AND m.direction = r.direction AND m.position = r.position
                    WHERE r.{in_tails} AND r.seq IS NOT NULL AND m.content IS NOT NULL
                    GROUP BY r.thread_id
                )
                SELECT d.* FROM derive_transcript d
                JOIN picked p ON p.thread_id = d.thread_id
                    AND d.seq IN (p.first_seq, p.last_seq)""")
            # (a trace the transcript had to read again may hold spans of theirs in no
            # turn: thread_tails_mat counts those)
            con.execute(f"DELETE FROM temp.span_threads_mat WHERE turn_id IS NULL AND {in_tails}")
        con.execute(
            f"CREATE TEMP TABLE threads_mat AS SELECT * FROM derive_threads WHERE {in_threads}"
        )
        if tails:
            self._merge_tails()
        write_changed(con, db, "threads_mat", in_threads)

    def _stamp_threads(self, in_threads: str, threads: list[str]) -> None:
        """Give the threads just re-derived (and those that lost traces) a new version
        stamp, one number for the whole refresh (`thread_version` reads it)."""
        con, db = self.con, self.db
        version = con.execute(f"SELECT nextval({self.version_seq})").fetchall()[0][0]
        con.execute(f"DELETE FROM {db}.thread_versions WHERE {in_threads}")
        self._temp_table("_stamped", pa.table({"thread_id": pa.array(threads, pa.string())}))
        con.execute(
            f"INSERT INTO {db}.thread_versions SELECT thread_id, ? FROM temp._stamped", [version]
        )
