-- The patients a multi-patient read returned, on PostgreSQL: a recall query, a page of a
-- recall work list or its export names many patients in one audit entry, so that each of them
-- sees the read in their own access log. Written with the entry and hashed into its leaf
-- (encoding version 4); append-only like the entry itself.
-- Twin of ../sqlite/0019_audit_named_patient.sql: a change to one needs the same change to the other.
-- Keyed by position, the order rows arrive in; the index by patient is what a patient's access
-- log reads.
CREATE TABLE audit_named_patient (
    audit_seq BIGINT NOT NULL REFERENCES audit_event (seq),
    patient_id BIGINT NOT NULL REFERENCES patient (id),
    PRIMARY KEY (audit_seq, patient_id)
);
CREATE INDEX audit_named_patient_by_patient ON audit_named_patient (patient_id, audit_seq);

CREATE TRIGGER audit_named_patient_no_change BEFORE UPDATE OR DELETE ON audit_named_patient
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_named_patient_no_truncate BEFORE TRUNCATE ON audit_named_patient
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
