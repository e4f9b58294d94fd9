-- 0003: linked turns (a turn that names the turn it answers: otel_threads.previous_turn_id).
-- linked_turns: one row per stored span that carries previous_turn_id, written by the
--   writer in the span's own transaction. Small (one row per linked turn), so chains
--   of links are walked here rather than in spans: to find which traces a late turn
--   affects, and to refuse forks (collect --on-fork reject).
-- rejected_turns: turns refused by --on-fork reject, and the turn that already
--   answered the same previous turn. Spans of a rejected turn that were stored before
--   it was refused (children end, and are exported, first) stay in spans but belong to
--   no thread; spans of it that arrive later are refused too.
CREATE TABLE linked_turns (
    trace_id         VARCHAR NOT NULL,
    turn_id          VARCHAR NOT NULL,
    previous_turn_id VARCHAR NOT NULL,
    thread_id        VARCHAR,
    start_time       TIMESTAMP
);
INSERT INTO linked_turns
SELECT trace_id, span_id, previous_turn_id, thread_id, start_time
FROM spans WHERE previous_turn_id IS NOT NULL;
CREATE TABLE rejected_turns (
    trace_id         VARCHAR NOT NULL,
    turn_id          VARCHAR NOT NULL,
    previous_turn_id VARCHAR NOT NULL,
    answered_by      VARCHAR NOT NULL,
    rejected_at      TIMESTAMP NOT NULL
);
CREATE INDEX linked_turns_turn_id ON linked_turns (turn_id);
CREATE INDEX linked_turns_previous_turn_id ON linked_turns (previous_turn_id);
