-- Aggregates maintained by the stream workers (streams/), fenced by Kafka offsets.
-- Buckets are by event time (occurred_at) at minute, hour and day granularity;
-- rolling windows are sums of buckets.
CREATE TABLE agg_type_buckets (
    granularity    text        NOT NULL CHECK (granularity IN ('minute', 'hour', 'day')),
    bucket         timestamptz NOT NULL,
    event_type     text        NOT NULL,
    event_count    bigint      NOT NULL,
    distinct_users bigint      NOT NULL,
    PRIMARY KEY (granularity, bucket, event_type)
);

CREATE TABLE agg_user_buckets (
    granularity text        NOT NULL CHECK (granularity IN ('minute', 'hour', 'day')),
    bucket      timestamptz NOT NULL,
    user_id     text        NOT NULL,
    event_type  text        NOT NULL,
    event_count bigint      NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    PRIMARY KEY (granularity, bucket, user_id, event_type)
);
CREATE INDEX agg_user_buckets_user ON agg_user_buckets (user_id, granularity, bucket);

-- Per-user lifetime totals per type (a user's total is the sum over types).
CREATE TABLE agg_user_totals (
    user_id     text        NOT NULL,
    event_type  text        NOT NULL,
    event_count bigint      NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    PRIMARY KEY (user_id, event_type)
);

-- The offset fence: the next offset each (group, topic, partition) has still to apply.
-- Moved in the same transaction as the deltas; records below it are skipped.
CREATE TABLE stream_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
