-- Drop the UNIQUE constraint on the sealed NHS number on SQLite (issue 2, load speed).
-- Twin of ../postgres/0016_patient_sealed_nhs_number.sql: a change to one needs the same change to the other.
--
-- Since 0011 patient.nhs_number holds a sealed value: random ciphertext, so two rows for one
-- patient never collide on it and its UNIQUE index guarded nothing. Uniqueness of the patient
-- is patient_nhs_number_index on the keyed blind index. The useless index cost a fifth of a
-- 1,000,000-procedure load (a random B-tree insert of a 60-byte key per patient) and 3% of
-- the file. SQLite cannot drop a column constraint, so the table is rebuilt in the documented
-- way (https://sqlite.org/lang_altertable.html#otheralter): SqliteStore::migrate runs the
-- migrations with foreign keys off and runs PRAGMA foreign_key_check before turning them on.

CREATE TABLE patient_rebuilt (
    id INTEGER PRIMARY KEY,
    nhs_number TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    date_of_birth TEXT NOT NULL,
    sex TEXT NOT NULL,
    postcode TEXT,
    date_of_death TEXT,
    created_at TEXT NOT NULL,
    -- HMAC-SHA256 of the NHS number under the blind-index key, 128 bits in hex: the lookup key.
    nhs_number_index TEXT,
    -- The 15th of the month of birth (see 0011).
    birth_month_mid TEXT
);

INSERT INTO patient_rebuilt (id, nhs_number, family_name, given_name, date_of_birth, sex,
                             postcode, date_of_death, created_at, nhs_number_index,
                             birth_month_mid)
SELECT id, nhs_number, family_name, given_name, date_of_birth, sex, postcode, date_of_death,
       created_at, nhs_number_index, birth_month_mid
FROM patient;

DROP TABLE patient;
ALTER TABLE patient_rebuilt RENAME TO patient;
CREATE UNIQUE INDEX patient_nhs_number_index ON patient (nhs_number_index);
