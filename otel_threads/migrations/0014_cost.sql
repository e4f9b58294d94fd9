-- 0014: cost (otel_threads.prices). model_prices holds the price of each (provider,
-- model) that LLM calls have named, as resolved when first seen (the genai-prices data,
-- or a user's price file, price_overrides, which wins); a row with no source is a model
-- no price is known for, so it is not looked up again. A price is per million tokens
-- (per thousand requests for requests_kcount), with tiers by the call's input tokens:
-- {base, tiers: [{start, price}]} (a tier's price applies above its start).
-- llm_calls computes each call's cost from them; turns and threads keep the sums.
-- otel_threads_derived's row '(prices)' records the price sources the rows were
-- resolved from; when they change, the rows are resolved anew and the traces of the
-- models whose price changed are derived again.
CREATE TABLE model_prices (
    provider         VARCHAR,
    model            VARCHAR NOT NULL,
    source           VARCHAR,
    input_mtok       STRUCT(base DOUBLE, tiers STRUCT("start" BIGINT, price DOUBLE)[]),
    output_mtok      STRUCT(base DOUBLE, tiers STRUCT("start" BIGINT, price DOUBLE)[]),
    cache_read_mtok  STRUCT(base DOUBLE, tiers STRUCT("start" BIGINT, price DOUBLE)[]),
    cache_write_mtok STRUCT(base DOUBLE, tiers STRUCT("start" BIGINT, price DOUBLE)[]),
    requests_kcount  DOUBLE
);
CREATE TABLE price_overrides (
    position         INTEGER NOT NULL,
    provider         VARCHAR,
    model            VARCHAR NOT NULL,
    input_mtok       DOUBLE,
    output_mtok      DOUBLE,
    cache_read_mtok  DOUBLE,
    cache_write_mtok DOUBLE,
    requests_kcount  DOUBLE
);
ALTER TABLE turns_mat ADD COLUMN cost_usd DOUBLE;
ALTER TABLE turns_mat ADD COLUMN unpriced_call_count BIGINT;
ALTER TABLE threads_mat ADD COLUMN cost_usd DOUBLE;
ALTER TABLE threads_mat ADD COLUMN unpriced_call_count BIGINT;
