-- Surveillance state on SQLite: runs, the signal kept per monitored subject, and alerts.
-- Twin of ../postgres/0002_surveillance.sql: a change to one needs the same change to the other.
-- A subject that has never signalled has no row; see docs/surveillance.md for the state machine.

CREATE TABLE surveillance_run (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    as_of TEXT NOT NULL,
    n_implants INTEGER NOT NULL,
    n_alerts INTEGER NOT NULL,
    summary TEXT NOT NULL
);

CREATE TABLE surveillance_signal (
    id INTEGER PRIMARY KEY,
    method TEXT NOT NULL CHECK (method IN ('maxsprt', 'cusum')),
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('device_model', 'lot', 'provider', 'consultant')),
    subject TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('signalled', 'cleared')),
    since TEXT NOT NULL,
    observed REAL NOT NULL,
    expected REAL NOT NULL,
    statistic REAL NOT NULL,
    critical_value REAL NOT NULL,
    explanation TEXT NOT NULL,
    first_run_id INTEGER NOT NULL REFERENCES surveillance_run (id),
    last_run_id INTEGER NOT NULL REFERENCES surveillance_run (id),
    UNIQUE (method, subject_kind, subject)
);

CREATE TABLE surveillance_alert (
    id INTEGER PRIMARY KEY,
    signal_id INTEGER NOT NULL REFERENCES surveillance_signal (id),
    run_id INTEGER NOT NULL REFERENCES surveillance_run (id),
    raised_at TEXT NOT NULL,
    since TEXT NOT NULL,
    observed REAL NOT NULL,
    expected REAL NOT NULL,
    statistic REAL NOT NULL,
    critical_value REAL NOT NULL,
    explanation TEXT NOT NULL
);
CREATE INDEX surveillance_alert_signal ON surveillance_alert (signal_id);
