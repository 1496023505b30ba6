-- WebAuthn passkeys and security keys (issue 4, part 2), and the factor behind each session.
-- Twin of ../postgres/0013_webauthn.sql: a change to one needs the same change to the other.
--
-- A session now records which second factor its holder last authenticated with (the sign-in,
-- then each step-up) and whether that factor resists phishing: administrators, regulators
-- and researchers may act only through a session whose factor does. Sessions started before
-- this migration were all started with a TOTP or backup code, so they default to 'totp'.
ALTER TABLE account_session ADD COLUMN factor TEXT NOT NULL DEFAULT 'totp'
    CHECK (factor IN ('totp', 'backup_code', 'webauthn', 'oidc'));
ALTER TABLE account_session ADD COLUMN phishing_resistant INTEGER NOT NULL DEFAULT 0
    CHECK (phishing_resistant IN (0, 1));

-- An account's registered WebAuthn credentials. The public key and signature counter are
-- kept as webauthn-rs serialises its `Passkey` (JSON): nothing here is secret, since a
-- credential proves possession of a private key that never leaves the authenticator.
CREATE TABLE account_webauthn_credential (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account (id),
    -- The authenticator's credential id, base64url without padding; unique across accounts.
    credential_id TEXT NOT NULL UNIQUE,
    -- The holder's name for it ("blue YubiKey"), shown in their list.
    label TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX account_webauthn_credential_account ON account_webauthn_credential (account_id);

-- A WebAuthn ceremony begun and not yet finished: the challenge state webauthn-rs needs to
-- verify the authenticator's answer, kept server-side and found by the SHA-256 of the handle
-- the client echoes back. Each is finished at most once (used_at, set by a conditional
-- UPDATE in the finishing transaction); the service refuses one older than five minutes.
CREATE TABLE webauthn_ceremony (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account (id),
    -- registration: adding a credential from a session; sign_in: the second factor of a
    -- sign-in whose password was right; reauthentication: a step-up of a session.
    kind TEXT NOT NULL CHECK (kind IN ('registration', 'sign_in', 'reauthentication')),
    handle_hash TEXT NOT NULL UNIQUE,
    -- The session a registration or step-up belongs to; none for a sign-in.
    session_id INTEGER REFERENCES account_session (id),
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    used_at TEXT
);
