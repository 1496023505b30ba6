-- OpenID Connect sign-in (issue 4 §2): sign-ins under way at the identity provider, and which
-- identity provider subject is which account.
-- Twin of ../postgres/0014_oidc.sql: a change to one needs the same change to the other.
--
-- A sign-in under way is kept only as hashes: the SHA-256 of its state (which the browser
-- brings back in the callback's URL), of its nonce (which the ID token must carry) and of its
-- PKCE verifier (which only the browser that started it holds, in a cookie). None of them can
-- be replayed from a copy of this table. A row is taken (deleted) by its first callback, so a
-- state works once; rows older than their expiry are purged whenever a sign-in starts.
CREATE TABLE oidc_sign_in (
    id INTEGER PRIMARY KEY,
    state_hash TEXT NOT NULL UNIQUE,
    nonce_hash TEXT NOT NULL,
    verifier_hash TEXT NOT NULL,
    -- Whole seconds, so that both engines compare them as written.
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX oidc_sign_in_expiry ON oidc_sign_in (expires_at);

-- There is no self sign-up: an operator links an identity provider's subject to an existing
-- account (`mdor account link-oidc`), and an ID token whose (issuer, subject) is not here
-- signs in no one. One subject per account and issuer.
CREATE TABLE account_oidc_identity (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account (id),
    -- The issuer exactly as configured and as the ID token's iss claim names it.
    issuer TEXT NOT NULL,
    -- The ID token's sub claim: the provider's stable identifier of the person.
    subject TEXT NOT NULL,
    linked_at TEXT NOT NULL,
    UNIQUE (issuer, subject),
    UNIQUE (account_id, issuer)
);
