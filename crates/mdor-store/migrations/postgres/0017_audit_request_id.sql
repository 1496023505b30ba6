-- The request behind an audited event on PostgreSQL: the id the web layer gave the HTTP request
-- (also in its tracing span and `X-Request-Id` response header), so that an entry can be tied
-- to the request's log lines. Null for command-line and background work, and for every entry
-- written before this migration.
-- Twin of ../sqlite/0017_audit_request_id.sql: a change to one needs the same change to the other.

-- A nullable column without a default: no existing row changes, so the append-only triggers
-- and every stored leaf hash are untouched (entries with a request id use encoding version 3).
ALTER TABLE audit_event ADD COLUMN request_id TEXT;
