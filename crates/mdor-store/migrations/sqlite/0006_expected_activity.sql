-- Expected activity on SQLite: how many procedures each provider is expected to perform in a
-- month, loaded by `mdor activity load`; data quality reports completeness against it.
-- Twin of ../postgres/0006_expected_activity.sql: a change to one needs the same change to the other.

-- One figure per provider and month; loading a month again replaces its figure. The month is
-- text `YYYY-MM`, so ranges compare as strings on both engines.
CREATE TABLE expected_activity (
    organisation_id INTEGER NOT NULL REFERENCES organisation (id),
    month TEXT NOT NULL CHECK (length(month) = 7 AND substr(month, 5, 1) = '-'),
    expected_procedures INTEGER NOT NULL CHECK (expected_procedures >= 0),
    loaded_at TEXT NOT NULL,
    PRIMARY KEY (organisation_id, month)
);

-- Data quality counts a provider's procedures by procedure date; the unique
-- (provider_id, local_record_id) index would make that a scan of all its procedures' rows.
CREATE INDEX procedure_provider_date ON procedure (provider_id, procedure_date);
