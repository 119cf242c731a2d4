-- Indicator values (src/map): the canonical Annex 1 time series, one row per indicator, trust,
-- period and stratum per submission. A resubmission for the same indicator, trust and period
-- marks the rows it replaces with its submission id (superseded_by) and adds its own: the
-- current series is the rows with superseded_by NULL, the history is every row.
CREATE TABLE indicator_value (
    submission_id  TEXT NOT NULL REFERENCES submission (id),
    recorded_at    INTEGER NOT NULL,                -- microseconds since the Unix epoch
    indicator      TEXT NOT NULL,                   -- pqom-indicator code
    trust          TEXT NOT NULL,                   -- ODS code
    period_start   TEXT NOT NULL,                   -- as submitted (FHIR date or dateTime)
    period_end     TEXT NOT NULL,
    stratifier     TEXT NOT NULL,                   -- pqom-stratifier code; '' for the total
    stratum_system TEXT NOT NULL,                   -- '' for the total
    stratum_code   TEXT NOT NULL,                   -- '' for the total
    numerator      INTEGER NOT NULL CHECK (numerator >= 0),
    denominator    INTEGER CHECK (denominator >= 0),  -- NULL for counts and themes
    value          REAL,
    narrative      TEXT,
    superseded_by  TEXT REFERENCES submission (id)
) STRICT;

CREATE INDEX indicator_value_current
    ON indicator_value (indicator, trust, period_start)
    WHERE superseded_by IS NULL;
CREATE INDEX indicator_value_by_key
    ON indicator_value (indicator, trust, period_start, period_end, recorded_at);
CREATE INDEX indicator_value_by_submission ON indicator_value (submission_id);
