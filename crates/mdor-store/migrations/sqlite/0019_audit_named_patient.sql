-- The patients a multi-patient read returned, on SQLite: a recall query, a page of a recall
-- work list or its export names many patients in one audit entry, so that each of them sees
-- the read in their own access log. Written with the entry and hashed into its leaf
-- (encoding version 4); append-only like the entry itself.
-- Twin of ../postgres/0019_audit_named_patient.sql: a change to one needs the same change to the other.
-- Keyed by position, without a rowid: rows arrive in position order, so the table itself only
-- ever grows at its end; the one index that takes random inserts is the one a patient's
-- access log reads.
CREATE TABLE audit_named_patient (
    audit_seq INTEGER NOT NULL REFERENCES audit_event (seq),
    patient_id INTEGER NOT NULL REFERENCES patient (id),
    PRIMARY KEY (audit_seq, patient_id)
) WITHOUT ROWID;
CREATE INDEX audit_named_patient_by_patient ON audit_named_patient (patient_id, audit_seq);

CREATE TRIGGER audit_named_patient_no_update BEFORE UPDATE ON audit_named_patient
BEGIN
    SELECT RAISE(ABORT, 'audit_named_patient is append-only');
END;
CREATE TRIGGER audit_named_patient_no_delete BEFORE DELETE ON audit_named_patient
BEGIN
    SELECT RAISE(ABORT, 'audit_named_patient is append-only');
END;
