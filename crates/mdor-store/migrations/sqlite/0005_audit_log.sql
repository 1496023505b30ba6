-- The audit as a Merkle log (RFC 6962): every audit_event gets a gapless sequence number
-- (its position in the log, assigned under the write lock) and its leaf hash,
-- SHA-256(0x00 || canonical encoding), computed by the store (see mdor-store `audit_log`).
-- Signed checkpoints (tree size and root) are kept in audit_checkpoint for reference; the
-- copies that count are the ones exported off the database.
-- Twin of ../postgres/0005_audit_log.sql: a change to one needs the same change to the other.

ALTER TABLE audit_event ADD COLUMN seq INTEGER;
ALTER TABLE audit_event ADD COLUMN leaf_hash BLOB CHECK (leaf_hash IS NULL OR length(leaf_hash) = 32);

-- Entries written before this migration take their id as their position: SQLite gives a new
-- row the largest id plus one and audit rows are never deleted, so ids have no gaps. Their
-- leaf hash stays NULL (SQLite has no SHA-256); verification recomputes every leaf anyway.
DROP TRIGGER audit_event_no_update;
UPDATE audit_event SET seq = id;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
BEGIN
    SELECT RAISE(ABORT, 'audit_event is append-only');
END;
CREATE UNIQUE INDEX audit_event_seq ON audit_event (seq);
-- SQLite cannot add NOT NULL to an existing column; this refuses a row without a position.
CREATE TRIGGER audit_event_seq_required BEFORE INSERT ON audit_event
WHEN NEW.seq IS NULL
BEGIN
    SELECT RAISE(ABORT, 'audit_event.seq is required');
END;

CREATE TABLE audit_checkpoint (
    id INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL CHECK (length(root_hash) = 32),
    created_at TEXT NOT NULL,
    key_name TEXT NOT NULL,
    -- The whole signed note, exactly as exported.
    note TEXT NOT NULL
);

CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only');
END;
CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only');
END;
