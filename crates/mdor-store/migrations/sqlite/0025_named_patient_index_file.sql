-- SQLite only: the by-patient index of audit_named_patient moves out of the registry's file.
-- Each named patient was an insert at a random position of this index inside the commit a
-- recall's answer waits for (about one page of WAL per patient, growing with the log); the
-- index is now kept in `<database>.patient-index`, filled in sorted batches by a background
-- task, and a patient's access log reads the entries not yet indexed by position
-- (crates/mdor-store/src/backend/named_index.rs). The first start after this migration indexes
-- the existing log in batches; access logs are complete meanwhile.
-- PostgreSQL keeps its index (../postgres/0019_audit_named_patient.sql): no twin.
DROP INDEX audit_named_patient_by_patient;
