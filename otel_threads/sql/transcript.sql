-- transcript: the public view; its rows are derived by derive_transcript.sql and kept in
-- transcript_mat by otel_threads.derive as data arrives.
SELECT * FROM transcript_mat
