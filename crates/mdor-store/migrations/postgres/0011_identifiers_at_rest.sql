-- Identifiers encrypted at rest on PostgreSQL (issue 4, part 6; see src/field_crypto.rs).
-- Twin of ../sqlite/0011_identifiers_at_rest.sql: a change to one needs the same change to the other.
--
-- patient.nhs_number, family_name, given_name, date_of_birth and postcode, and
-- idempotency_key.response_body, now hold sealed values (`k<key id>.<base64>`) in the same
-- columns (date_of_birth becomes text to hold one). Rows written before this migration are
-- sealed by the store when `mdor migrate` runs with the key-encryption key
-- (nhs_number_index is null until then).

-- Data keys, each wrapped by the key-encryption key that lives outside the database.
CREATE TABLE data_key (
    id BIGINT PRIMARY KEY,
    purpose TEXT NOT NULL CHECK (purpose IN ('field', 'blind_index', 'research')),
    -- The fingerprint of the key-encryption key that wrapped it (not secret).
    kek_id TEXT NOT NULL,
    -- XChaCha20-Poly1305 of the 32-byte key, base64, bound to (id, purpose).
    wrapped TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    -- Set once no value is sealed under it any more (`mdor keys rotate`).
    retired_at TIMESTAMPTZ
);
-- One blind-index key: changing it would change every patient's index.
CREATE UNIQUE INDEX data_key_one_blind_index ON data_key (purpose) WHERE purpose = 'blind_index';

-- HMAC-SHA256 of the NHS number under the blind-index key, 128 bits in hex: the lookup key.
ALTER TABLE patient ADD COLUMN nhs_number_index TEXT;
CREATE UNIQUE INDEX patient_nhs_number_index ON patient (nhs_number_index);
-- The 15th of the month of birth: ages for analysis, which never holds the key, to within
-- half a month. The date of birth itself is sealed.
ALTER TABLE patient ADD COLUMN birth_month_mid DATE;
UPDATE patient SET birth_month_mid = date_trunc('month', date_of_birth)::date + 14;
ALTER TABLE patient ALTER COLUMN date_of_birth TYPE TEXT USING date_of_birth::text;
-- Sealed values are random: uniqueness is the index's job now.
ALTER TABLE patient DROP CONSTRAINT patient_nhs_number_key;
