-- The core record on SQLite: organisations, consultants, the device register, patients,
-- procedures, implants, follow-up flags, removals, API tokens and idempotency keys.
-- Twin of ../postgres/0001_core_record.sql: a change to one needs the same change to the other.

CREATE TABLE organisation (
    id INTEGER PRIMARY KEY,
    ods_code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('provider', 'regulator', 'registry', 'manufacturer')),
    region TEXT
);

CREATE TABLE consultant (
    id INTEGER PRIMARY KEY,
    gmc_number TEXT NOT NULL UNIQUE,
    family_name TEXT,
    given_name TEXT,
    specialty TEXT,
    organisation_id INTEGER REFERENCES organisation (id)
);

CREATE TABLE device_model (
    id INTEGER PRIMARY KEY,
    udi_di TEXT NOT NULL UNIQUE,
    issuer TEXT NOT NULL CHECK (issuer IN ('gs1', 'hibcc')),
    manufacturer TEXT NOT NULL,
    brand TEXT NOT NULL,
    model TEXT NOT NULL,
    device_type TEXT NOT NULL,
    risk_class TEXT NOT NULL CHECK (risk_class IN ('III', 'IIb', 'IIa')),
    registry TEXT NOT NULL
);

CREATE TABLE patient (
    id INTEGER PRIMARY KEY,
    nhs_number TEXT NOT NULL UNIQUE,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex TEXT NOT NULL,
    postcode TEXT,
    date_of_death TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE procedure (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patient (id),
    provider_id INTEGER NOT NULL REFERENCES organisation (id),
    consultant_id INTEGER NOT NULL REFERENCES consultant (id),
    procedure_date TEXT NOT NULL,
    opcs4_code TEXT,
    opcs4_version TEXT,
    snomed_ct_id INTEGER,
    laterality TEXT NOT NULL,
    registry TEXT NOT NULL,
    local_record_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (provider_id, local_record_id)
);
CREATE INDEX procedure_patient ON procedure (patient_id);

CREATE TABLE implant (
    id INTEGER PRIMARY KEY,
    procedure_id INTEGER NOT NULL REFERENCES procedure (id),
    position INTEGER NOT NULL,
    udi_di TEXT NOT NULL,
    device_model_id INTEGER REFERENCES device_model (id),
    lot TEXT,
    serial TEXT,
    expiry TEXT,
    manufactured TEXT,
    raw_scan TEXT,
    entry_type TEXT NOT NULL CHECK (entry_type IN ('barcode', 'manual')),
    UNIQUE (procedure_id, position)
);
CREATE INDEX implant_udi_lot ON implant (udi_di, lot);
CREATE INDEX implant_udi_serial ON implant (udi_di, serial);

CREATE TABLE follow_up_flag (
    id INTEGER PRIMARY KEY,
    implant_id INTEGER NOT NULL REFERENCES implant (id),
    flag TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    resolved_at TEXT,
    UNIQUE (implant_id, flag)
);

CREATE TABLE removal (
    id INTEGER PRIMARY KEY,
    implant_id INTEGER NOT NULL UNIQUE REFERENCES implant (id),
    kind TEXT NOT NULL CHECK (kind IN ('revision', 'explant')),
    removal_date TEXT NOT NULL,
    reason TEXT,
    revising_provider_id INTEGER NOT NULL REFERENCES organisation (id),
    recorded_at TEXT NOT NULL
);

CREATE TABLE api_token (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    organisation_id INTEGER NOT NULL REFERENCES organisation (id),
    role TEXT NOT NULL CHECK (role IN ('provider_submitter', 'regulator', 'admin')),
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE idempotency_key (
    token_id INTEGER NOT NULL REFERENCES api_token (id),
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (token_id, idempotency_key)
);
