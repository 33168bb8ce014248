-- Least privilege for the raw-event sink and for erasure (roles are cluster-wide and NOLOGIN:
-- grant them to login roles, or SET ROLE). Retention drops partitions, which is DDL, and runs as
-- the owner of analytics_events (the role that ran the migrations).
--   brainstream_sink:   read + insert the raw table, read erased_users. Nothing else.
--   brainstream_eraser: delete raw rows, record erasures, subtract/delete aggregates.
DO $$
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_sink') THEN
            CREATE ROLE brainstream_sink NOLOGIN;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_eraser') THEN
            CREATE ROLE brainstream_eraser NOLOGIN;
        END IF;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
        WHEN insufficient_privilege THEN
            RAISE NOTICE 'no CREATEROLE: create brainstream_sink and brainstream_eraser yourself';
    END;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_sink') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO brainstream_sink', current_schema());
        GRANT SELECT, INSERT ON analytics_events TO brainstream_sink;
        GRANT SELECT ON erased_users TO brainstream_sink;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_eraser') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO brainstream_eraser', current_schema());
        GRANT SELECT, DELETE ON analytics_events TO brainstream_eraser;
        GRANT SELECT, INSERT, UPDATE ON erased_users TO brainstream_eraser;
        GRANT SELECT, INSERT, UPDATE, DELETE
            ON agg_type_buckets, agg_user_buckets, agg_user_totals TO brainstream_eraser;
    END IF;
END
$$;
