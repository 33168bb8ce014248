-- Users whose data was erased (GDPR). Sinks, workers and exports drop their events for good.
CREATE TABLE erased_users (
    user_id   text        PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now(),
    reason    text
);
