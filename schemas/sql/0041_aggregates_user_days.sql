-- Per-user aggregates compacted (issue 12): one row per user, type and UTC day, its 24 hour
-- counts in an array, replacing the per-user hour and day rows and the lifetime totals (three
-- upserted rows, one of them updating an indexed column, per distinct user, type and hour of a
-- batch; now one, usually a HOT update).
--   agg_user_days   per user, type and UTC day: events per hour of the day (hours[1] is
--                   00:00-01:00 UTC), events, first/last seen. Answers a user's counts per type
--                   per hour and day; summed over days, a user's totals and first/last seen.
--                   Its rows are the membership behind the exact distinct users per hour and
--                   day in agg_type_buckets. The key (user first) serves a user's lookups,
--                   erasure and the upserts; the index on day serves distinct users over
--                   trailing windows (the rows of the window's days whose last_seen is inside
--                   it). Neither index holds a column an upsert changes, so updates stay HOT
--                   (fillfactor leaves room for them).
CREATE TABLE agg_user_days (
    user_id text NOT NULL,
    event_type text NOT NULL,
    day date NOT NULL,
    hours int4[] NOT NULL CHECK (cardinality(hours) = 24),
    event_count int8 NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (user_id, event_type, day)
) WITH (fillfactor = 80);
CREATE INDEX agg_user_days_day ON agg_user_days (day);

-- Existing aggregates keep their meaning: each day row with the hour rows of its day.
INSERT INTO agg_user_days
SELECT d.user_id, d.event_type, (d.bucket AT TIME ZONE 'UTC')::date,
       ARRAY(SELECT coalesce(h.event_count, 0)::int4
             FROM generate_series(0, 23) AS g(k)
             LEFT JOIN agg_user_buckets h
               ON h.granularity = 'hour' AND h.user_id = d.user_id
              AND h.event_type = d.event_type AND h.bucket = d.bucket + g.k * interval '1 hour'
             ORDER BY g.k),
       d.event_count, d.first_seen, d.last_seen
FROM agg_user_buckets d
WHERE d.granularity = 'day';

DROP TABLE agg_user_buckets, agg_user_totals, agg_user_buckets_rebuilt, agg_user_totals_rebuilt;
CREATE TABLE agg_user_days_rebuilt (LIKE agg_user_days INCLUDING ALL);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_worker') THEN
        GRANT SELECT, INSERT, UPDATE ON agg_user_days TO brainstream_worker;
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON agg_user_days_rebuilt
            TO brainstream_worker;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_eraser') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON agg_user_days TO brainstream_eraser;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_reader') THEN
        GRANT SELECT ON agg_user_days, agg_user_days_rebuilt TO brainstream_reader;
    END IF;
END
$$;
