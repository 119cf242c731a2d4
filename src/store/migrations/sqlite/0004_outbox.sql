-- Delivery (issue #5): the outbox of accepted submissions, the statically configured
-- destinations, and one delivery row per (destination, event number). Instants are
-- microseconds since the Unix epoch (UTC).

-- One event per accepted submission, written in the transaction that accepts it (never for a
-- rejected one). `seq` is the global order; the dispatcher fans out rows whose dispatched_at is
-- NULL, in seq order, into deliveries.
CREATE TABLE outbox_event (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,             -- UUID of the event
    topic         TEXT NOT NULL CHECK (topic IN ('submission', 'regional-bundle')),
    submission_id TEXT NOT NULL REFERENCES submission (id),
    created_at    INTEGER NOT NULL,                 -- acceptance (the commit)
    reporter      TEXT,                             -- ODS codes from the organisation directory
    icb           TEXT,
    region        TEXT,
    indicators    TEXT NOT NULL,                    -- JSON array of pqom-indicator codes
    dispatched_at INTEGER
) STRICT;

CREATE INDEX outbox_event_undispatched ON outbox_event (seq) WHERE dispatched_at IS NULL;

-- Destinations from configuration ([[deliver.destination]]), kept here for their event counter
-- and status; rows are added at start for every configured name and never deleted (a name
-- that comes back continues its numbering).
CREATE TABLE static_destination (
    name               TEXT PRIMARY KEY NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'error')),
    error              TEXT,
    events_since_start INTEGER NOT NULL DEFAULT 0
) STRICT;

-- One row per event per destination. `destination` is 'static:<name>' or 'subscription:<id>';
-- `number` is that destination's event number (1, 2, 3, ... with no gaps). A worker sends only
-- the lowest pending number of a destination, so N+1 never leaves before N is delivered or
-- dead-lettered. `claimed_until` is the lease of the worker sending it; `payload` is the signed
-- bundle, built at the first attempt and resent unchanged on every retry.
CREATE TABLE delivery (
    destination     TEXT NOT NULL,
    number          INTEGER NOT NULL,
    event_seq       INTEGER NOT NULL REFERENCES outbox_event (seq),
    bundle_id       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'feed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    claimed_by      TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    payload         BLOB,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    PRIMARY KEY (destination, number)
) STRICT;

CREATE INDEX delivery_pending ON delivery (destination, number) WHERE state = 'pending';
CREATE INDEX delivery_dead ON delivery (destination, number) WHERE state = 'dead';
CREATE INDEX delivery_by_event ON delivery (event_seq);
