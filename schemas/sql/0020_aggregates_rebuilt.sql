-- The reference aggregates, recomputed by SQL from analytics_events (`brainstream aggregates
-- rebuild`); `aggregates verify` compares the streamed tables with them, row by row.
CREATE TABLE agg_type_buckets_rebuilt (LIKE agg_type_buckets INCLUDING ALL);
CREATE TABLE agg_user_buckets_rebuilt (LIKE agg_user_buckets INCLUDING ALL);
CREATE TABLE agg_user_totals_rebuilt (LIKE agg_user_totals INCLUDING ALL);
