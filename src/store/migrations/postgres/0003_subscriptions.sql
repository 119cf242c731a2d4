-- Subscriptions (deliver::subscription; FHIR Subscriptions R5 Backport IG for R4). One row per
-- logical Subscription: the resource as served, plus the columns delivery filters, counts and
-- schedules on. Instants are microseconds since the Unix epoch (UTC), as in the SQLite schema.
CREATE TABLE subscription (
    id                 TEXT PRIMARY KEY,
    -- Counts client writes (create, update); status changes by the gateway do not bump it.
    version_id         BIGINT NOT NULL,
    -- The R4 Subscription as served: id, meta, status and error kept in step with the columns.
    resource           JSONB NOT NULL,
    topic              TEXT NOT NULL,                   -- SubscriptionTopic canonical (criteria)
    status             TEXT NOT NULL CHECK (status IN ('requested', 'active', 'error', 'off')),
    endpoint           TEXT NOT NULL,                   -- channel.endpoint
    error              TEXT,                            -- why status is error
    -- The last event number assigned to this subscription (eventsSinceSubscriptionStart). The
    -- outbox fan-out takes the next one with
    -- UPDATE subscription SET events_since_start = events_since_start + 1 WHERE id = $1 RETURNING ...
    -- whose row lock orders concurrent fan-outs.
    events_since_start BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    -- When a notification (handshake, heartbeat, event) last reached the endpoint: heartbeats are
    -- due heartbeatPeriod after it.
    last_sent_at       BIGINT,
    -- DELETE keeps the row (outbox rows may refer to it) and stops every delivery.
    deleted            BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX subscription_live ON subscription (status, topic) WHERE NOT deleted;
