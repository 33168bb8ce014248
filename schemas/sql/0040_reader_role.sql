-- A read-only role for the dashboard and `brainstream status` (NOLOGIN, cluster-wide; grant it
-- to a login role): SELECT on every table of brainstream's schema, now and later (default
-- privileges of the role that runs the migrations), nothing else.
DO $$
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_reader') THEN
            CREATE ROLE brainstream_reader NOLOGIN;
        END IF;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
        WHEN insufficient_privilege THEN
            RAISE NOTICE 'no CREATEROLE: create brainstream_reader yourself';
    END;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'brainstream_reader') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO brainstream_reader', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO brainstream_reader',
                       current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO '
                       'brainstream_reader', current_schema());
    END IF;
END
$$;
