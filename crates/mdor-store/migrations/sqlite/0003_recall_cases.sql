-- Recall and field safety cases on SQLite: the case and its criteria, the implants and
-- patients it found, each patient's status per provider with its history, and an
-- append-only audit of every access to a case's identifiable data.
-- Twin of ../postgres/0003_recall_cases.sql: a change to one needs the same change to the other.

CREATE TABLE recall_case (
    id INTEGER PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    reason TEXT NOT NULL,
    opened_by INTEGER NOT NULL REFERENCES organisation (id),
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    lot_from TEXT,
    lot_to TEXT,
    serial_from TEXT,
    serial_to TEXT,
    expiry_from TEXT,
    expiry_to TEXT,
    manufactured_from TEXT,
    manufactured_to TEXT,
    implanted_from TEXT,
    implanted_to TEXT
);

-- The case's devices: at least one UDI-DI (a whole model is every UDI-DI of it).
CREATE TABLE recall_case_device (
    case_id INTEGER NOT NULL REFERENCES recall_case (id),
    udi_di TEXT NOT NULL,
    PRIMARY KEY (case_id, udi_di)
);

-- Listed lots and serials; with none listed and no range, every lot or serial matches.
CREATE TABLE recall_case_lot (
    case_id INTEGER NOT NULL REFERENCES recall_case (id),
    lot TEXT NOT NULL,
    PRIMARY KEY (case_id, lot)
);
CREATE TABLE recall_case_serial (
    case_id INTEGER NOT NULL REFERENCES recall_case (id),
    serial TEXT NOT NULL,
    PRIMARY KEY (case_id, serial)
);

-- The implants a case found. Only the case id is a foreign key: every row is produced by
-- the matching INSERT … SELECT from `implant` joined to `procedure` (which are never deleted),
-- and on PostgreSQL per-row foreign-key triggers on the other three columns tripled the time
-- to open a national case (about 60 µs an implant).
CREATE TABLE recall_case_implant (
    case_id INTEGER NOT NULL REFERENCES recall_case (id),
    implant_id INTEGER NOT NULL,
    patient_id INTEGER NOT NULL,
    provider_id INTEGER NOT NULL,
    identified_at TEXT NOT NULL,
    PRIMARY KEY (case_id, implant_id)
);

-- One line of work: a patient to be followed up by the provider that implanted the device.
CREATE TABLE recall_case_patient (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES recall_case (id),
    patient_id INTEGER NOT NULL REFERENCES patient (id),
    provider_id INTEGER NOT NULL REFERENCES organisation (id),
    status TEXT NOT NULL CHECK (status IN ('identified', 'provider_notified', 'patient_contacted', 'reviewed', 'explanted', 'no_action')),
    status_at TEXT NOT NULL,
    UNIQUE (case_id, patient_id, provider_id)
);
CREATE INDEX recall_case_patient_provider ON recall_case_patient (case_id, provider_id, id);

-- Each status change after identification (when the entry was created, `status_at`).
CREATE TABLE recall_case_event (
    id INTEGER PRIMARY KEY,
    case_patient_id INTEGER NOT NULL REFERENCES recall_case_patient (id),
    status TEXT NOT NULL,
    note TEXT,
    at TEXT NOT NULL,
    by_organisation INTEGER NOT NULL REFERENCES organisation (id),
    by_role TEXT NOT NULL
);
CREATE INDEX recall_case_event_entry ON recall_case_event (case_patient_id, id);

-- Who read or changed identifiable data, when, and how much. Rows are never updated or
-- deleted: the triggers below refuse it.
CREATE TABLE audit_event (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    organisation_id INTEGER NOT NULL REFERENCES organisation (id),
    role TEXT NOT NULL,
    token_id INTEGER REFERENCES api_token (id),
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    patient_id INTEGER REFERENCES patient (id),
    record_count INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX audit_event_patient ON audit_event (patient_id, id);

CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only');
END;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only');
END;
