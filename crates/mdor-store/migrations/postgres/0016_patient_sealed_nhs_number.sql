-- Twin of ../sqlite/0016_patient_sealed_nhs_number.sql, which drops SQLite's UNIQUE constraint
-- on the sealed patient.nhs_number. PostgreSQL dropped it in 0011 (patient_nhs_number_key), so
-- there is nothing to do here; the file keeps the two backends' migration versions in step.
SELECT 1;
