-- Review items of break-glass accesses (issue 4 §4): a person who reaches a record the policy
-- does not give their role (a consultant treating another trust's patient in an emergency, an
-- administrator investigating) states a written reason, and the access raises one item here,
-- written in the same transaction as the access's audit entry. An administrator other than
-- that person decides whether it was appropriate.
-- Twin of ../postgres/0015_access_review.sql: a change to one needs the same change to the other.
--
-- Who, when, what and why are the audit entry's (joined by its position); the item adds the
-- reason and the decision. The reason is kept in clear like recall notes: it names the
-- emergency, not the patient (the entry names the record).
CREATE TABLE access_review (
    id INTEGER PRIMARY KEY,
    -- The break-glass access's audit entry, by its position in the log.
    audit_seq INTEGER NOT NULL UNIQUE REFERENCES audit_event (seq),
    -- The person who broke glass: API tokens cannot.
    account_id INTEGER NOT NULL REFERENCES account (id),
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    decision TEXT CHECK (decision IN ('appropriate', 'inappropriate')),
    decision_note TEXT CHECK (decision_note IS NULL OR length(decision_note) <= 2000),
    decided_by INTEGER REFERENCES account (id),
    decided_at TEXT,
    -- A decision names its reviewer and time, or none of the three is set.
    CHECK ((decision IS NULL) = (decided_by IS NULL) AND (decision IS NULL) = (decided_at IS NULL)),
    -- Nobody reviews their own break-glass access.
    CHECK (decided_by IS NULL OR decided_by <> account_id)
);
CREATE INDEX access_review_open ON access_review (id) WHERE decision IS NULL;

-- Items are never deleted, and an item's access, reason and decision, once recorded, are final.
CREATE TRIGGER access_review_no_delete BEFORE DELETE ON access_review
BEGIN
    SELECT RAISE(ABORT, 'access_review items are kept');
END;
CREATE TRIGGER access_review_final BEFORE UPDATE ON access_review
WHEN OLD.decision IS NOT NULL
    OR NEW.audit_seq IS NOT OLD.audit_seq
    OR NEW.account_id IS NOT OLD.account_id
    OR NEW.reason IS NOT OLD.reason
BEGIN
    SELECT RAISE(ABORT, 'an access review''s access, reason and decision are final');
END;
