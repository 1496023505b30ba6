-- Server-side sessions of accounts (issue 4, part 3): one row per sign-in, found by the
-- SHA-256 of the secret the browser holds in its cookie (the secret itself is never stored,
-- so a copy of the database cannot be replayed as a cookie).
-- The service decides the timeouts (idle 30 minutes, absolute 12 hours) from these times;
-- a session ends by sign-out, revocation, expiry, step-up (which replaces its secret, not the
-- row) or its account being disabled, and an ended session is kept for the holder's list.
-- Twin of ../postgres/0008_sessions.sql: a change to one needs the same change to the other.

CREATE TABLE account_session (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account (id),
    -- SHA-256 of the cookie's secret, hex; replaced when the holder steps up.
    secret_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    -- The last request made with the session, to a minute: the idle timeout runs from here.
    last_seen_at TEXT NOT NULL,
    -- The last time the holder entered a password and second factor in this session (the
    -- sign-in itself, then each step-up).
    reauthenticated_at TEXT NOT NULL,
    ended_at TEXT,
    -- signed_out, revoked, idle, expired or account_disabled.
    end_reason TEXT CHECK (end_reason IN
        ('signed_out', 'revoked', 'idle', 'expired', 'account_disabled')),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE INDEX account_session_account ON account_session (account_id, id);
