-- The patients a multi-patient read returned, on PostgreSQL: a recall query, a page of a
-- recall work list or its export names many patients in one audit entry, so that each of them
-- sees the read in their own access log. Written with the entry and hashed into its leaf
-- (encoding version 4); append-only like the entry itself.
-- Twin of ../sqlite/0019_audit_named_patient.sql: a change to one needs the same change to the other.
CREATE TABLE audit_named_patient (
    audit_seq BIGINT NOT NULL REFERENCES audit_event (seq),
    patient_id BIGINT NOT NULL REFERENCES patient (id),
    -- Keyed by patient first: the access log of one patient is the read.
    PRIMARY KEY (patient_id, audit_seq)
);
CREATE INDEX audit_named_patient_seq ON audit_named_patient (audit_seq);

CREATE TRIGGER audit_named_patient_no_change BEFORE UPDATE OR DELETE ON audit_named_patient
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_named_patient_no_truncate BEFORE TRUNCATE ON audit_named_patient
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
