-- The spine: submissions as received, and versioned resources with their search index.
-- Instants are microseconds since the Unix epoch (UTC), as in the SQLite schema, so that one
-- search SQL builder and one cursor format serve both backends.

-- Every submission, accepted or rejected, with the exact bytes received and the answer given.
CREATE TABLE submission (
    id          UUID PRIMARY KEY,
    received_at BIGINT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('message', 'rest')),
    -- MessageHeader.id: the reliable-messaging key. Two instances racing on one message id
    -- both INSERT ... ON CONFLICT DO NOTHING; the second waits for the first and inserts nothing.
    message_id  TEXT UNIQUE,
    sender      TEXT,                               -- ODS code
    body        BYTEA NOT NULL,
    sha256      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    outcome     JSONB NOT NULL,                     -- OperationOutcome
    response    JSONB                               -- response Bundle
);

CREATE INDEX submission_by_sender ON submission (sender, received_at DESC, id DESC);

-- One row per logical resource: its current version and the search index of that version
-- (columns filled from store::index::extract). Versioning a resource updates this row, so its
-- row lock serialises concurrent resubmissions of one identifier.
CREATE TABLE resource (
    resource_type     TEXT NOT NULL,
    id                TEXT NOT NULL,
    version_id        BIGINT NOT NULL,
    last_updated      BIGINT NOT NULL,
    -- The business identifier that makes a resubmission a new version of this resource.
    identifier_system TEXT,
    identifier_value  TEXT,
    status            TEXT,
    measure_url       TEXT,
    measure_version   TEXT,
    period_start      BIGINT,                       -- inclusive
    period_end        BIGINT,                       -- exclusive
    url               TEXT,
    version           TEXT,
    name              TEXT,
    PRIMARY KEY (resource_type, id),
    -- NULLs are distinct: resources without an identifier never collide.
    UNIQUE (resource_type, identifier_system, identifier_value)
);

CREATE INDEX resource_by_last_updated ON resource (resource_type, last_updated, id);
CREATE INDEX resource_by_measure ON resource (resource_type, measure_url, period_start);
CREATE INDEX resource_by_url ON resource (resource_type, url, version);

-- Every version ever written (history, vread).
CREATE TABLE resource_version (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    version_id    BIGINT NOT NULL,
    last_updated  BIGINT NOT NULL,
    submission_id UUID NOT NULL REFERENCES submission (id),
    resource      JSONB NOT NULL,                   -- with id and meta as served
    PRIMARY KEY (resource_type, id, version_id),
    FOREIGN KEY (resource_type, id) REFERENCES resource (resource_type, id)
);

CREATE INDEX resource_version_by_submission ON resource_version (submission_id);

-- Token and reference values of current versions (identifier, reporter).
CREATE TABLE resource_token (
    resource_type TEXT NOT NULL,
    id            TEXT NOT NULL,
    param         TEXT NOT NULL,
    system        TEXT,                             -- NULL for a reference, '' for no system
    value         TEXT NOT NULL,
    FOREIGN KEY (resource_type, id) REFERENCES resource (resource_type, id)
);

CREATE INDEX resource_token_by_value ON resource_token (resource_type, param, value, system);
CREATE INDEX resource_token_by_resource ON resource_token (resource_type, id);

-- Bodies and resources are large (a reference report is ~145 KB) and repetitive: lz4 TOAST
-- compression costs about a fifth of the default pglz per report. It needs PostgreSQL 14+ built
-- with lz4 (the Debian, Ubuntu and official Docker builds are); elsewhere the default stays.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE submission ALTER COLUMN body SET COMPRESSION lz4, '
         || 'ALTER COLUMN outcome SET COMPRESSION lz4, ALTER COLUMN response SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE resource_version ALTER COLUMN resource SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 column compression unavailable (%), keeping the server default', SQLERRM;
END
$$;
