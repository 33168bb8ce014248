-- Raw events: one row per event, partitioned by day on occurred_at.
-- The primary key must contain the partition key; event_id is a UUIDv7 made by the producer and
-- occurred_at travels with it, so (event_id, occurred_at) is as unique as event_id alone.
CREATE TABLE analytics_events (
    event_id        uuid        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    kafka_offset    bigint,
    kafka_partition integer,
    schema_version  smallint    NOT NULL,
    event_type      text        NOT NULL,
    user_id         text        NOT NULL,
    source          text        NOT NULL,
    properties      jsonb       NOT NULL,
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

COMMENT ON COLUMN analytics_events.kafka_partition IS 'lineage: partition of brainstream.events the row came from';
COMMENT ON COLUMN analytics_events.kafka_offset IS 'lineage: offset of the record in that partition';

CREATE INDEX analytics_events_user_time ON analytics_events (user_id, occurred_at);
CREATE INDEX analytics_events_type_time ON analytics_events (event_type, occurred_at);
CREATE INDEX analytics_events_time ON analytics_events (occurred_at);

-- Out-of-range times (very late, far future) land here until a day partition exists for them.
CREATE TABLE analytics_events_default PARTITION OF analytics_events DEFAULT;

-- Creates the missing day partitions in [first_day, last_day] (UTC days). Rows of those days that
-- already sit in the default partition are moved into the new partition in the same transaction.
-- Returns the number of partitions created. Idempotent.
CREATE FUNCTION bs_ensure_event_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date;
    part text;
    lo timestamptz;
    hi timestamptz;
    created integer := 0;
    moved bigint;
BEGIN
    FOR day IN SELECT d::date FROM generate_series(first_day, last_day, interval '1 day') AS d LOOP
        part := 'analytics_events_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(format('%I.%I', current_schema(), part)) IS NOT NULL;
        lo := day::timestamp AT TIME ZONE 'UTC';
        hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
        CREATE TEMP TABLE IF NOT EXISTS bs_moved_events (LIKE analytics_events) ON COMMIT DROP;
        WITH gone AS (
            DELETE FROM analytics_events_default WHERE occurred_at >= lo AND occurred_at < hi
            RETURNING *
        ) INSERT INTO bs_moved_events SELECT * FROM gone;
        GET DIAGNOSTICS moved = ROW_COUNT;
        EXECUTE format('CREATE TABLE %I PARTITION OF analytics_events FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
        IF moved > 0 THEN
            INSERT INTO analytics_events SELECT * FROM bs_moved_events;
            TRUNCATE bs_moved_events;
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;
