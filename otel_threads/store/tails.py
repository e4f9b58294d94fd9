"""`Tails`: the threads a refresh only adds to, derived from their tails
(otel_threads.store.thread_rows, `ThreadRows`, derives the others whole).

A thread whose new turns all start after its derived ones, none of them or of its
earlier ones linked, and whose new LLM calls all come after its derived ones in the
transcript's order (`Tails._tails`), is derived from its tail: ``derive_turns`` and
``transcript_rows`` run over the new turns and calls with the turn and call before them
and, for each new message, how many copies of it one earlier call held at most (all that
the transcript's rules ask of the calls before: `Tails._tail_keys`), and the new rows are
numbered on from the thread's last ones. What the thread had is read from its one row of
``thread_tails_mat`` (derive_thread_tails: its last turn and call, that call's message
keys, its last transcript number, its spans in no turn), and its row of ``threads`` is
its row as it was merged with ``derive_threads`` over the new turns (`Tails._merge_tails`;
only the percentiles and exact sums read the thread's turn durations and costs, narrow).
Each refresh moves the row of ``thread_tails_mat`` on (`Tails._thread_tails`).
"""

from __future__ import annotations

from otel_threads.store.shared_views import SharedViews

__all__ = ["Tails"]

#: What thread_tails_mat holds of a thread (derive_thread_tails), besides its id.
_TAIL = (
    "last_turn",
    "last_turn_index",
    "linked",
    "last_call",
    "last_call_keys",
    "thread_seq",
    "on_branch",
    "loose_spans",
    "first_call_n",
)
#: The order of a thread's turns (derive_turns: start_time, then turn_id, NULLs last) and
#: of its LLM calls (transcript_rows: start, end, trace, span), as values that compare so.
_TURN_ORDER = (
    "struct_pack(n := start_time IS NULL, s := coalesce(start_time, TIMESTAMP '1970-01-01'), "
    "t := turn_id)"
)
_CALL_ORDER = (
    "struct_pack(s := {p}call_start_unix_nano, n := {p}call_end_unix_nano IS NULL, "
    "e := coalesce({p}call_end_unix_nano, 0), t := {p}trace_id, i := {p}span_id)"
)


class Tails(SharedViews):
    """Derives the threads of a refresh that only grow, from their tails."""

    def _tails(self, candidates: list[str]) -> list[str]:
        """Of ``candidates`` (threads none of whose derived rows the refresh's traces held),
        those that the refresh only adds to: its turns (none of them linked) all start
        after the thread's derived ones, none linked either, and its LLM calls, each in one
        of those turns, all come after the thread's derived ones in the transcript's
        order. The new rows of such a thread follow from its new turns and calls with the
        last turn and call before them, and each message key's most copies in one call
        before them (`_tail_keys`); the rows it has stay as they are. What the thread had
        is read from its one row of thread_tails_mat. TEMP ``_tails`` holds them: the last
        turn and call before, where the new rows' numbers go on from, and that row
        (``kept_*``)."""
        con, db = self.con, self.db
        if not candidates:
            return []
        in_cand = self._in("thread_id", candidates)
        con.execute(
            f"""
            CREATE TEMP TABLE _tails AS
            WITH new_turns AS (
                SELECT thread_id, min({_TURN_ORDER}) AS first,
                       bool_or(previous_turn_id IS NOT NULL) AS linked
                FROM temp.turn_facts WHERE {in_cand} GROUP BY thread_id
            ), new_calls AS (
                SELECT n.thread_id, min({_CALL_ORDER.format(p="n.")}) AS first,
                       bool_and(t.turn_id IS NOT NULL) AS in_new_turns
                FROM temp._new_keys n LEFT JOIN temp._touched t
                    ON t.thread_id = n.thread_id AND t.turn_id = n.turn_id
                WHERE n.{in_cand} GROUP BY n.thread_id
            ), kept AS (
                SELECT * FROM {db}.thread_tails_mat WHERE {in_cand}
            )
            SELECT c.thread_id, k.last_turn.t AS last_turn_id,
                   coalesce(k.last_turn_index - 1, 0) AS index_offset,
                   k.last_call.t AS last_trace_id, k.last_call.i AS last_span_id,
                   coalesce(k.thread_seq, 0) AS seq_offset,
                   {", ".join(f"k.{c} AS kept_{c}" for c in _TAIL)}
            FROM (SELECT unnest(?::VARCHAR[]) AS thread_id) c
            LEFT JOIN new_turns nt USING (thread_id)
            LEFT JOIN new_calls nc USING (thread_id)
            LEFT JOIN kept k USING (thread_id)
            WHERE NOT coalesce(nt.linked, false) AND NOT coalesce(k.linked, false)
              AND (nt.first IS NULL OR k.last_turn IS NULL OR nt.first > k.last_turn)
              AND coalesce(nc.in_new_turns, true)
              AND (nc.first IS NULL OR k.last_call IS NULL OR nc.first > k.last_call)
              AND coalesce(k.on_branch, true)""",
            [candidates],
        )
        return [r[0] for r in con.execute("SELECT thread_id FROM temp._tails").fetchall()]

    def _tail_keys(self) -> None:
        """What the transcript of a thread in ``_tails`` compares its new messages with, into
        TEMP ``message_keys_mat`` beside them: the messages of its last call before (as
        thread_tails_mat keeps them), and for each key of its new messages, a call before
        that one holding that key as many times as the most copies of it one of its calls
        held (what transcript_rows asks of the calls before: the most copies of a key, and
        the previous call's)."""
        con, db = self.con, self.db
        con.execute(
            "INSERT INTO temp.message_keys_mat SELECT n.* FROM temp._new_keys n "
            "SEMI JOIN temp._tails t ON t.thread_id = n.thread_id"
        )
        con.execute("""
            INSERT INTO temp.message_keys_mat BY NAME
            SELECT thread_id, m.turn_id, c.t AS trace_id, c.i AS span_id, m.direction,
                   m.position, m.role, c.s AS call_start_unix_nano,
                   CASE WHEN NOT c.n THEN c.e END AS call_end_unix_nano, m.k
            FROM (SELECT thread_id, kept_last_call AS c, unnest(kept_last_call_keys) AS m
                  FROM temp._tails)""")
        # (a thread's keys are numbered from its first call on: the table's row groups
        # before the earliest of those of the threads are skipped, so the read follows
        # how long ago they began, not the store; every row of thread_tails_mat with a
        # call has it: the open that migrates to 0022 derives the table anew first)
        ((since,),) = con.execute("SELECT min(kept_first_call_n) FROM temp._tails").fetchall()
        if since is None:  # none of them held a call before: no copies to count
            return
        con.execute(
            f"""
            INSERT INTO temp.message_keys_mat
            SELECT thread_id, NULL, '', '', 'output', unnest(range(copies)), NULL,
                   -9223372036854775808, -9223372036854775808, k, NULL
            FROM (SELECT thread_id, k, max(copies) AS copies FROM (
                      SELECT o.thread_id, o.k, count(*) AS copies
                      FROM {db}.message_keys_mat o
                      SEMI JOIN (SELECT DISTINCT n.thread_id, n.k FROM temp._new_keys n
                                 SEMI JOIN temp._tails t ON t.thread_id = n.thread_id) n
                          ON n.thread_id = o.thread_id AND n.k = o.k
                      WHERE o.trace_n >= ?
                      GROUP BY o.thread_id, o.trace_id, o.span_id, o.k)
                  GROUP BY thread_id, k)""",
            [since],
        )

    def _merge_tails(self) -> None:
        """Make the rows of the threads in ``_tails`` in TEMP ``threads_mat`` (derived over
        their new turns and transcript rows alone) those of the whole threads: each merged
        with the thread's row as it was (none for a new thread), its spans in no turn
        (thread_tails_mat), and the percentiles and exact sums over all of its turns,
        read narrow from turns_mat (which holds the new ones by now). Its new turns come
        after all of its others, none linked, so the rest follows from the two rows."""
        con, db = self.con, self.db
        con.execute(f"""
            CREATE TEMP TABLE _merged AS
            WITH q AS (
                SELECT thread_id,
                       quantile_cont(duration_ms, 0.5) AS p50_turn_duration_ms,
                       quantile_cont(duration_ms, 0.99) AS p99_turn_duration_ms,
                       sum(duration_ms::DECIMAL(38, 6))::DOUBLE AS total_turn_duration_ms,
                       sum(cost_usd::DECIMAL(38, 12))::DOUBLE AS cost_usd
                FROM {db}.turns_mat
                WHERE thread_id IN (SELECT thread_id FROM temp._tails)
                GROUP BY thread_id
            ), o AS (
                SELECT o.* FROM {db}.threads_mat o
                SEMI JOIN temp._tails t ON t.thread_id = o.thread_id
            ), m AS (
                SELECT d.thread_id,
                       coalesce(o.project, d.project) AS project,
                       coalesce(o.turn_count, 0) + d.turn_count AS turn_count,
                       least(o.start_time, d.start_time) AS start_time,  -- (NULLs ignored)
                       greatest(o.last_updated, d.last_updated) AS last_updated,
                       coalesce(o.first_turn_id, d.first_turn_id) AS first_turn_id,
                       coalesce(d.last_turn_id, o.last_turn_id) AS last_turn_id,
                       q.p50_turn_duration_ms,
                       q.p99_turn_duration_ms,
                       coalesce(o.span_count, coalesce(t.kept_loose_spans, 0))
                           + d.span_count AS span_count,
                       coalesce(o.llm_call_count, 0) + d.llm_call_count AS llm_call_count,
                       coalesce(o.error_turn_count, 0) + d.error_turn_count
                           AS error_turn_count,
                       coalesce(o.input_tokens, 0) + d.input_tokens AS input_tokens,
                       coalesce(o.output_tokens, 0) + d.output_tokens AS output_tokens,
                       coalesce(o.first_input, d.first_input) AS first_input,
                       coalesce(d.last_output, o.last_output) AS last_output,
                       coalesce(o.fork_count, 0) + d.fork_count AS fork_count,
                       coalesce(o.running_turn_count, 0) + d.running_turn_count
                           AS running_turn_count,
                       q.total_turn_duration_ms,
                       coalesce(o.user_id, d.user_id) AS user_id,
                       list_sort(list_distinct(list_concat(o.models, d.models))) AS models,
                       coalesce(o.service_name, d.service_name) AS service_name,
                       coalesce(o.cycle_turn_count, 0) + d.cycle_turn_count
                           AS cycle_turn_count,
                       q.cost_usd,
                       coalesce(o.unpriced_call_count, 0) + d.unpriced_call_count
                           AS unpriced_call_count,
                       d.annotation_count,  -- (derive_threads counts all of them)
                       d.ended,
                       d.ended_at,
                       -- the first turn after the latest end mark: of the new turns when
                       -- one of them carries it, else the first new one after an ended
                       -- thread, else as it was
                       CASE WHEN d.ended OR d.reopened_at IS NOT NULL THEN d.reopened_at
                            WHEN o.ended THEN d.start_time
                            ELSE o.reopened_at END AS reopened_at
                FROM temp.threads_mat d
                JOIN temp._tails t USING (thread_id)
                JOIN q USING (thread_id)
                LEFT JOIN o USING (thread_id)
            )
            SELECT *, (epoch_us(last_updated) - epoch_us(start_time)) / 1000.0 AS duration_ms
            FROM m""")
        con.execute(
            "DELETE FROM temp.threads_mat WHERE thread_id IN (SELECT thread_id FROM temp._merged)"
        )
        con.execute("INSERT INTO temp.threads_mat BY NAME SELECT * FROM temp._merged")

    def _thread_tails(self, in_threads: str, whole: bool, tails: bool) -> None:
        """The threads' rows of thread_tails_mat: of those derived whole, derive_thread_tails
        over all of their rows (`_transcript`); of those in ``_tails``, their row as it
        was, moved on to their new last turn, call and transcript row."""
        con, db = self.con, self.db
        con.execute(f"DELETE FROM {db}.thread_tails_mat WHERE {in_threads}")
        if whole:
            con.execute(f"INSERT INTO {db}.thread_tails_mat SELECT * FROM temp._whole_tails")
        if not tails:
            return
        con.execute(f"""
            INSERT INTO {db}.thread_tails_mat
            WITH nt AS (
                SELECT thread_id, max({_TURN_ORDER}) AS last_turn,
                       arg_max(turn_index, {_TURN_ORDER}) AS last_turn_index,
                       bool_or(previous_turn_id IS NOT NULL) AS linked
                FROM temp.turns_mat
                WHERE thread_id IN (SELECT thread_id FROM temp._tails)
                GROUP BY thread_id
            ), nc AS (
                SELECT thread_id, max({_CALL_ORDER.format(p="")}) AS last_call
                FROM temp._new_keys
                WHERE thread_id IN (SELECT thread_id FROM temp._tails)
                GROUP BY thread_id
            ), nk AS (
                SELECT n.thread_id,
                       list(struct_pack(turn_id := n.turn_id, direction := n.direction,
                                        position := n.position, role := n.role, k := n.k)
                            ORDER BY n.direction, n.position) AS last_call_keys
                FROM temp._new_keys n
                JOIN nc ON nc.thread_id = n.thread_id AND nc.last_call.t = n.trace_id
                       AND nc.last_call.i = n.span_id
                GROUP BY n.thread_id
            ), nr AS (
                SELECT thread_id, max(thread_seq) AS thread_seq,
                       bool_and(on_current_branch) AS on_branch
                FROM temp._tail_rows
                GROUP BY thread_id
            ), nf AS (
                SELECT thread_id, min(trace_n) AS first_call_n
                FROM temp._new_keys
                WHERE thread_id IN (SELECT thread_id FROM temp._tails)
                GROUP BY thread_id
            )
            SELECT t.thread_id,
                   coalesce(nt.last_turn, t.kept_last_turn),
                   coalesce(nt.last_turn_index, t.kept_last_turn_index),
                   coalesce(nt.linked, t.kept_linked),
                   coalesce(nc.last_call, t.kept_last_call),
                   CASE WHEN nc.thread_id IS NULL THEN t.kept_last_call_keys
                        ELSE nk.last_call_keys END,
                   coalesce(nr.thread_seq, t.kept_thread_seq),
                   CASE WHEN nr.thread_id IS NULL THEN t.kept_on_branch
                        ELSE coalesce(t.kept_on_branch, true) AND nr.on_branch END,
                   t.kept_loose_spans,
                   least(t.kept_first_call_n, nf.first_call_n)
            FROM temp._tails t
            LEFT JOIN nt USING (thread_id)
            LEFT JOIN nc USING (thread_id)
            LEFT JOIN nk USING (thread_id)
            LEFT JOIN nr USING (thread_id)
            LEFT JOIN nf USING (thread_id)
            WHERE nt.thread_id IS NOT NULL OR nc.thread_id IS NOT NULL
               OR nr.thread_id IS NOT NULL OR t.kept_last_turn IS NOT NULL
               OR t.kept_last_call IS NOT NULL OR t.kept_thread_seq IS NOT NULL
               OR t.kept_loose_spans IS NOT NULL""")
