-- 0025: turn keys in generations. turns_mat's index by turn id (a span id, random) was
-- written about whole at every checkpoint, more than every other table together on a
-- store of 5.1M spans (63.3 MiB a checkpoint against 2.8 without it): a cost that grew
-- with the turns stored. Its one use, a refresh's lookup of the turns it touches that
-- were derived before, reads turn_keys instead: the (turn, thread) pairs of turns_mat in
-- tables of about 262,144 each, turn_keys_0, turn_keys_1, ..., each indexed by turn id;
-- refreshes add to the newest alone (otel_threads.store.turn_keys), so an older one and
-- its index are not written again but by retention.
CREATE TABLE turn_keys_0 (turn_id VARCHAR, thread_id VARCHAR);
INSERT INTO turn_keys_0 SELECT DISTINCT turn_id, thread_id FROM turns_mat;
CREATE INDEX turn_keys_0_turn_id ON turn_keys_0 (turn_id);
CREATE VIEW turn_keys AS SELECT * FROM turn_keys_0;
DROP INDEX turns_mat_turn_id;
