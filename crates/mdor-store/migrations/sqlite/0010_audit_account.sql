-- The person behind an audited access on SQLite: the account whose session made it, so that an
-- entry names who read the record, not only their organisation and role. Null for API tokens
-- (the token names the system) and for every entry written before this migration.
-- Twin of ../postgres/0010_audit_account.sql: a change to one needs the same change to the other.

-- A nullable column without a default: no existing row changes, so the append-only triggers
-- and every stored leaf hash are untouched (entries with an account use encoding version 2).
ALTER TABLE audit_event ADD COLUMN account_id INTEGER REFERENCES account (id);
