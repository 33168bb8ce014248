-- Aggregates v2 (issue 12): the workers fold the sink's accepted stream, and the per-user minute
-- buckets (about one row per event, as large as the raw table) are gone.
--   agg_type_buckets   events per type per minute/hour/day bucket; exact distinct users per
--                      hour and day bucket (NULL for minute buckets: not kept).
--   agg_user_buckets   per user and type, per hour and day bucket: events, first/last seen.
--                      Its rows are the membership behind the hour/day distinct users. One
--                      index (the key, user first) serves lookups by user, erasure and upserts.
--   agg_user_totals    per user and type: lifetime events, first/last seen. Indexed on
--                      last_seen: distinct users over trailing windows (5m/1h/24h/7d) are the
--                      users whose last_seen is inside the window.
-- Existing rows keep their meaning: minute user rows are dropped (nothing reads them any more)
-- and minute distinct counts become NULL.
DELETE FROM agg_user_buckets WHERE granularity = 'minute';
ALTER TABLE agg_user_buckets DROP CONSTRAINT agg_user_buckets_granularity_check;
ALTER TABLE agg_user_buckets ADD CONSTRAINT agg_user_buckets_granularity_check
    CHECK (granularity IN ('hour', 'day'));
DROP INDEX agg_user_buckets_user;
ALTER TABLE agg_user_buckets DROP CONSTRAINT agg_user_buckets_pkey;
ALTER TABLE agg_user_buckets ADD PRIMARY KEY (user_id, granularity, bucket, event_type);

ALTER TABLE agg_type_buckets ALTER COLUMN distinct_users DROP NOT NULL;
UPDATE agg_type_buckets SET distinct_users = NULL WHERE granularity = 'minute';
ALTER TABLE agg_type_buckets ADD CONSTRAINT agg_type_buckets_distinct_check
    CHECK ((granularity = 'minute') = (distinct_users IS NULL));

CREATE INDEX agg_user_totals_last_seen ON agg_user_totals (last_seen);

-- The reference tables follow the same layout.
DROP TABLE agg_type_buckets_rebuilt, agg_user_buckets_rebuilt, agg_user_totals_rebuilt;
CREATE TABLE agg_type_buckets_rebuilt (LIKE agg_type_buckets INCLUDING ALL);
CREATE TABLE agg_user_buckets_rebuilt (LIKE agg_user_buckets INCLUDING ALL);
CREATE TABLE agg_user_totals_rebuilt (LIKE agg_user_totals INCLUDING ALL);

-- The eraser subtracts a user's minute counts from the raw rows the workers already applied
-- (those below their partition's fence), so it reads the fences.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_eraser') THEN
        GRANT SELECT ON stream_offsets TO brainstream_eraser;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_worker') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
            ON agg_type_buckets_rebuilt, agg_user_buckets_rebuilt, agg_user_totals_rebuilt
            TO brainstream_worker;
    END IF;
END
$$;
