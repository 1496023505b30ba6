-- Break-glass reasons and review decisions sealed and committed to in the audit log (issue 4
-- §4–6): the reason a person typed, and a reviewer's decision and note, may name a patient,
-- so they are sealed like identifiers; and each is committed to by a digest in its audit
-- entry's leaf hash (encoding version 5), so that editing one shows in `mdor audit verify`.
-- Twin of ../sqlite/0024_sealed_review_details.sql: a change to one needs the same change to the other.
--
-- Reasons and notes recorded before this migration stay as they were written, with no
-- commitment (their entries have no digest).

-- The commitment (`FieldCipher::seal_detail`), 32 bytes, or NULL for an entry without one.
ALTER TABLE audit_event ADD COLUMN detail_digest BYTEA
    CHECK (detail_digest IS NULL OR length(detail_digest) = 32);

-- The audit entry of the decision, whose digest the sealed decision and note are bound to.
ALTER TABLE access_review ADD COLUMN decision_seq BIGINT REFERENCES audit_event (seq);

-- The length limits move to the service, which checks the text before it is sealed, since a
-- sealed value is longer than its text.
ALTER TABLE access_review DROP CONSTRAINT access_review_reason_check;
ALTER TABLE access_review ADD CONSTRAINT access_review_reason_check
    CHECK (char_length(reason) BETWEEN 1 AND 4000);
ALTER TABLE access_review DROP CONSTRAINT access_review_decision_note_check;
ALTER TABLE access_review ADD CONSTRAINT access_review_decision_note_check
    CHECK (decision_note IS NULL OR char_length(decision_note) <= 16000);

-- A sealed value (`k<key id>.…`) moved to a different key: what key rotation does.
CREATE FUNCTION access_review_resealed(old_value TEXT, new_value TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT old_value ~ '^k[0-9]+\.' AND new_value ~ '^k[0-9]+\.'
        AND split_part(old_value, '.', 1) <> split_part(new_value, '.', 1)
$$;

-- Still final once recorded, except that key rotation may move a sealed reason or note to
-- another key. (Its contents are held by the commitment, which the application cannot change.)
CREATE OR REPLACE FUNCTION access_review_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'access_review items are kept';
    END IF;
    IF NEW.audit_seq IS DISTINCT FROM OLD.audit_seq
        OR NEW.account_id IS DISTINCT FROM OLD.account_id
        OR (NEW.reason IS DISTINCT FROM OLD.reason
            AND NOT access_review_resealed(OLD.reason, NEW.reason))
        OR (OLD.decision IS NOT NULL AND (
            NEW.decision IS DISTINCT FROM OLD.decision
            OR NEW.decided_by IS DISTINCT FROM OLD.decided_by
            OR NEW.decided_at IS DISTINCT FROM OLD.decided_at
            OR NEW.decision_seq IS DISTINCT FROM OLD.decision_seq
            OR (NEW.decision_note IS DISTINCT FROM OLD.decision_note
                AND NOT access_review_resealed(OLD.decision_note, NEW.decision_note)))) THEN
        RAISE EXCEPTION 'an access review''s access, reason and decision are final';
    END IF;
    RETURN NEW;
END;
$$;
