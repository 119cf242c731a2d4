-- The spine: submissions as received, and versioned resources with their search index.
-- Instants are microseconds since the Unix epoch (UTC), as in the PostgreSQL schema.

-- Every submission, accepted or rejected, with the exact bytes received and the answer given.
CREATE TABLE submission (
    id          TEXT PRIMARY KEY NOT NULL,          -- UUID
    received_at INTEGER NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('message', 'rest')),
    -- MessageHeader.id: the reliable-messaging key; UNIQUE makes a duplicate lose the race.
    message_id  TEXT UNIQUE,
    sender      TEXT,                               -- ODS code
    body        BLOB NOT NULL,
    sha256      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    outcome     TEXT NOT NULL,                      -- OperationOutcome JSON
    response    TEXT                                -- response Bundle JSON
) STRICT;

CREATE INDEX submission_by_sender ON submission (sender, received_at DESC, id DESC);

-- One row per logical resource: its current version and the search index of that version
-- (columns filled from store::index::extract).
CREATE TABLE resource (
    resource_type     TEXT NOT NULL,
    id                TEXT NOT NULL,
    version_id        INTEGER NOT NULL,
    last_updated      INTEGER NOT NULL,
    -- The business identifier that makes a resubmission a new version of this resource.
    identifier_system TEXT,
    identifier_value  TEXT,
    status            TEXT,
    measure_url       TEXT,
    measure_version   TEXT,
    period_start      INTEGER,                      -- inclusive
    period_end        INTEGER,                      -- exclusive
    url               TEXT,
    version           TEXT,
    name              TEXT,
    PRIMARY KEY (resource_type, id),
    -- NULLs are distinct: resources without an identifier never collide.
    UNIQUE (resource_type, identifier_system, identifier_value)
) STRICT;

CREATE INDEX resource_by_last_updated ON resource (resource_type, last_updated, id);
CREATE INDEX resource_by_measure ON resource (resource_type, measure_url, period_start);
CREATE INDEX resource_by_url ON resource (resource_type, url, version);

-- Every version ever written (history, vread).
CREATE TABLE resource_version (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    version_id    INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL,
    submission_id TEXT NOT NULL REFERENCES submission (id),
    resource      TEXT NOT NULL,                    -- JSON with id and meta as served
    PRIMARY KEY (resource_type, id, version_id),
    FOREIGN KEY (resource_type, id) REFERENCES resource (resource_type, id)
) STRICT;

CREATE INDEX resource_version_by_submission ON resource_version (submission_id);

-- Token and reference values of current versions (identifier, reporter).
CREATE TABLE resource_token (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    system        TEXT,                             -- NULL for a reference, '' for no system
    value         TEXT NOT NULL,
    FOREIGN KEY (resource_type, id) REFERENCES resource (resource_type, id)
) STRICT;

CREATE INDEX resource_token_by_value ON resource_token (resource_type, param, value, system);
CREATE INDEX resource_token_by_resource ON resource_token (resource_type, id);
