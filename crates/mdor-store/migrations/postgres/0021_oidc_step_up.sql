-- A step-up through the identity provider (issue 4 §3): a sign-in under way may be the
-- re-authentication of a live session rather than a new sign-in.
-- Twin of ../sqlite/0021_oidc_step_up.sql: a change to one needs the same change to the other.
--
-- The session is named by the SHA-256 of its secret, as account_session keeps it: the
-- callback arrives from the provider's site without the SameSite=Strict session cookie, so
-- the session to give a new secret is the one that started the step-up. NULL for a sign-in.
ALTER TABLE oidc_sign_in ADD COLUMN step_up_session_hash TEXT;
