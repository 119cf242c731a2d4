-- The reporting period an outbox event is about. A `regional-bundle` event (one per period a
-- trust's accepted submission recorded values for) names the period whose consolidated regional
-- bundle changed; `submission` events leave both NULL.
ALTER TABLE outbox_event ADD COLUMN period_start TEXT;
ALTER TABLE outbox_event ADD COLUMN period_end TEXT;
