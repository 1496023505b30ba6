-- Break-glass reasons and review decisions sealed and committed to in the audit log (issue 4
-- §4–6): the reason a person typed, and a reviewer's decision and note, may name a patient,
-- so they are sealed like identifiers; and each is committed to by a digest in its audit
-- entry's leaf hash (encoding version 5), so that editing one shows in `mdor audit verify`.
-- Twin of ../postgres/0024_sealed_review_details.sql: a change to one needs the same change to the other.
--
-- Reasons and notes recorded before this migration stay as they were written, with no
-- commitment (their entries have no digest).

-- The commitment (`FieldCipher::seal_detail`), 32 bytes, or NULL for an entry without one.
ALTER TABLE audit_event ADD COLUMN detail_digest BLOB
    CHECK (detail_digest IS NULL OR length(detail_digest) = 32);

-- The table is rebuilt (SQLite cannot change a CHECK constraint; migrations run with foreign
-- keys off and `SqliteStore::migrate` checks every reference afterwards): the length limits
-- move to the service, which checks the text before it is sealed, since a sealed value is
-- longer than its text; and `decision_seq` names the audit entry of the decision, whose
-- digest the sealed decision and note are bound to.
CREATE TABLE access_review_sealed (
    id INTEGER PRIMARY KEY,
    audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit_event (seq),
    account_id INTEGER NOT NULL REFERENCES account (id),
    -- Sealed (`k<key id>.…`, opened against the entry's digest), or in clear from before
    -- this migration.
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 4000),
    decision TEXT CHECK (decision IN ('appropriate', 'inappropriate')),
    decision_note TEXT CHECK (decision_note IS NULL OR length(decision_note) <= 16000),
    decided_by INTEGER REFERENCES account (id),
    decided_at TEXT,
    decision_seq INTEGER REFERENCES audit_event (seq),
    CHECK ((decision IS NULL) = (decided_by IS NULL) AND (decision IS NULL) = (decided_at IS NULL)),
    CHECK (decided_by IS NULL OR decided_by <> account_id)
);
INSERT INTO access_review_sealed (id, audit_seq, account_id, reason, decision, decision_note,
    decided_by, decided_at)
SELECT id, audit_seq, account_id, reason, decision, decision_note, decided_by, decided_at
FROM access_review;
DROP TABLE access_review;
ALTER TABLE access_review_sealed RENAME TO access_review;
CREATE INDEX access_review_open ON access_review (id) WHERE decision IS NULL;

CREATE TRIGGER access_review_no_delete BEFORE DELETE ON access_review
BEGIN
    SELECT RAISE(ABORT, 'access_review items are kept');
END;
-- Still final once recorded, except that key rotation may move a sealed reason or note to
-- another key: a sealed value (`k<key id>.…`) may be replaced only by one under a different
-- key. (Its contents are held by the commitment, which the application cannot change.)
CREATE TRIGGER access_review_final BEFORE UPDATE ON access_review
WHEN NEW.audit_seq IS NOT OLD.audit_seq
    OR NEW.account_id IS NOT OLD.account_id
    OR (NEW.reason IS NOT OLD.reason AND NOT (
        OLD.reason GLOB 'k[0-9]*.*' AND NEW.reason GLOB 'k[0-9]*.*'
        AND substr(NEW.reason, 1, instr(NEW.reason, '.'))
            <> substr(OLD.reason, 1, instr(OLD.reason, '.'))))
    OR (OLD.decision IS NOT NULL AND (
        NEW.decision IS NOT OLD.decision
        OR NEW.decided_by IS NOT OLD.decided_by
        OR NEW.decided_at IS NOT OLD.decided_at
        OR NEW.decision_seq IS NOT OLD.decision_seq
        OR (NEW.decision_note IS NOT OLD.decision_note AND NOT (
            OLD.decision_note GLOB 'k[0-9]*.*' AND NEW.decision_note GLOB 'k[0-9]*.*'
            AND substr(NEW.decision_note, 1, instr(NEW.decision_note, '.'))
                <> substr(OLD.decision_note, 1, instr(OLD.decision_note, '.'))))))
BEGIN
    SELECT RAISE(ABORT, 'an access review''s access, reason and decision are final');
END;
