-- Least privilege for the aggregate workers (NOLOGIN, cluster-wide; grant it to a login role).
--   brainstream_worker: read erased_users, upsert the aggregates, move the offset fences,
--                       read analytics_events and write the *_rebuilt tables (verify/rebuild).
DO $$
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_worker') THEN
            CREATE ROLE brainstream_worker NOLOGIN;
        END IF;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
        WHEN insufficient_privilege THEN
            RAISE NOTICE 'no CREATEROLE: create brainstream_worker yourself';
    END;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_worker') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO brainstream_worker', current_schema());
        GRANT SELECT ON erased_users, analytics_events TO brainstream_worker;
        GRANT SELECT, INSERT, UPDATE
            ON agg_type_buckets, agg_user_buckets, agg_user_totals, stream_offsets
            TO brainstream_worker;
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
            ON agg_type_buckets_rebuilt, agg_user_buckets_rebuilt, agg_user_totals_rebuilt
            TO brainstream_worker;
    END IF;
END
$$;
