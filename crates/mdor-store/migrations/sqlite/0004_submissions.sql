-- Bulk submission on SQLite: submission jobs with their progress, the per-record report
-- (which is also the quarantine of rejected records), and the raw input and provenance of
-- every accepted procedure with its earlier versions.
-- Twin of ../postgres/0004_submissions.sql: a change to one needs the same change to the other.

-- One uploaded file. `resume_offset` and `resume_line` say where the next chunk starts; they
-- move only in the transaction that commits the chunk, so a killed job resumes exactly there.
CREATE TABLE submission_job (
    id INTEGER PRIMARY KEY,
    organisation_id INTEGER NOT NULL REFERENCES organisation (id),
    token_id INTEGER REFERENCES api_token (id),
    submitted_by TEXT NOT NULL,
    registry TEXT NOT NULL,
    dataset_version TEXT NOT NULL,
    format TEXT NOT NULL CHECK (format IN ('ndjson', 'csv')),
    spool_path TEXT NOT NULL,
    file_bytes INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'processing', 'completed', 'failed')),
    total_records INTEGER,
    records_done INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    accepted_with_warnings INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    corrected INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    resume_offset INTEGER NOT NULL DEFAULT 0,
    resume_line INTEGER NOT NULL DEFAULT 0,
    resolves_quarantine INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    failure TEXT
);
CREATE INDEX submission_job_organisation ON submission_job (organisation_id, id);

-- What became of each record of a job: the job's report. A rejected record keeps its raw
-- input here and stays in the provider's quarantine until a record with the same local
-- record id is accepted (or it is resubmitted by id). No foreign keys: rows are written only
-- by the chunk commit next to the job and procedures they name, and a per-row check would
-- cost PostgreSQL about 30 µs a record.
CREATE TABLE submission_record (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    line INTEGER NOT NULL,
    organisation_id INTEGER NOT NULL,
    local_record_id TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'accepted_with_warnings', 'rejected')),
    effect TEXT NOT NULL CHECK (effect IN ('created', 'corrected', 'unchanged', 'none')),
    procedure_id INTEGER,
    messages TEXT,
    record TEXT,
    resolved_at TEXT,
    resolved_by_job INTEGER,
    UNIQUE (job_id, line)
);
CREATE INDEX submission_record_quarantine ON submission_record (organisation_id, local_record_id)
    WHERE outcome = 'rejected' AND resolved_at IS NULL;

-- The raw input and provenance of the current version of each procedure that came through a
-- submission: the record as sent (JSON; a CSV row as column → cell), the dataset and version
-- it was validated under, its warnings, and who sent it, when, in which job and on which line.
CREATE TABLE procedure_source (
    procedure_id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    registry TEXT NOT NULL,
    dataset_version TEXT NOT NULL,
    record TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    warnings TEXT,
    job_id INTEGER NOT NULL,
    line INTEGER NOT NULL,
    organisation_id INTEGER NOT NULL,
    token_id INTEGER,
    received_at TEXT NOT NULL
);

-- Earlier versions of corrected procedures: the raw input they had (absent when the
-- procedure came through the single-record API) and the core record as it stood.
CREATE TABLE procedure_version (
    procedure_id INTEGER NOT NULL REFERENCES procedure (id),
    version INTEGER NOT NULL,
    registry TEXT,
    dataset_version TEXT,
    record TEXT,
    core_record TEXT NOT NULL,
    content_hash TEXT,
    job_id INTEGER,
    line INTEGER,
    organisation_id INTEGER,
    token_id INTEGER,
    received_at TEXT,
    superseded_at TEXT NOT NULL,
    superseded_by_job INTEGER NOT NULL,
    PRIMARY KEY (procedure_id, version)
);
