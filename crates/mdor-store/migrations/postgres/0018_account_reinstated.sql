-- When an administrator last re-enabled an account or reset its credentials, on PostgreSQL.
-- Twin of ../sqlite/0018_account_reinstated.sql: a change to one needs the same change to the other.
--
-- Idle expiry disables an account unused for 90 days, counting from its last sign-in or its
-- creation; an account re-enabled after that would be disabled again by the next daily run
-- before its holder could sign in. The idle clock now also restarts at this instant.
ALTER TABLE account ADD COLUMN reinstated_at TIMESTAMPTZ;
