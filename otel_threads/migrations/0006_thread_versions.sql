-- 0006: what changed, cheaply. Every time otel_threads.derive re-derives a thread (its
-- turns, transcript and thread row) it stamps the thread with a new number from
-- derive_version_seq; a build of a derived table from scratch records one in
-- derive_builds. The API's ETag of a thread is (latest build, the thread's stamp), so a
-- page that polls an unchanged thread gets 304 Not Modified without the thread being read.
CREATE SEQUENCE derive_version_seq;
CREATE TABLE thread_versions (
    thread_id VARCHAR NOT NULL,
    version   BIGINT NOT NULL
);
CREATE INDEX thread_versions_thread_id ON thread_versions (thread_id);
CREATE TABLE derive_builds (
    version  BIGINT NOT NULL,
    built_at TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP
);
