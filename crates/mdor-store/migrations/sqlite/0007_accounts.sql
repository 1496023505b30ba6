-- Staff and patient accounts (issue 4, parts 1 and 2): who may sign in, with which role and
-- organisation, their argon2id password hash, their TOTP secret sealed with the accounts key
-- (the key is a file named in the configuration, never stored here), single-use backup codes
-- and the failed sign-ins that drive the soft lock.
-- API tokens stay in api_token with their own three roles; account roles live here so that
-- api_token's CHECK constraint (which SQLite could only change by rebuilding the table) is
-- left alone.
-- Twin of ../postgres/0007_accounts.sql: a change to one needs the same change to the other.

CREATE TABLE account (
    id INTEGER PRIMARY KEY,
    -- Compared exactly; the service lowercases usernames before they get here.
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN (
        'provider_submitter', 'provider_data_manager', 'consultant', 'registry_analyst',
        'regulator', 'manufacturer', 'researcher', 'system_admin', 'patient')),
    organisation_id INTEGER REFERENCES organisation (id),
    patient_id INTEGER REFERENCES patient (id),
    -- PHC string: $argon2id$v=19$m=…,t=…,p=…$salt$hash.
    password_hash TEXT NOT NULL,
    -- Set while the password is the one an administrator generated (and so knows): the
    -- holder must choose their own before doing anything else.
    must_change_password INTEGER NOT NULL DEFAULT 1,
    -- ChaCha20-Poly1305: 12-byte nonce ‖ ciphertext ‖ 16-byte tag, sealed with the account's
    -- username bound as associated data.
    totp_secret_sealed BLOB NOT NULL,
    -- The last TOTP time step accepted: a code of this step or an earlier one is refused.
    totp_last_step INTEGER,
    created_at TEXT NOT NULL,
    last_login_at TEXT,
    disabled_at TEXT,
    -- Patients belong to no organisation; everyone else belongs to exactly one.
    CHECK ((role = 'patient') = (organisation_id IS NULL)),
    -- Only a patient's account may be linked to a patient record.
    CHECK (role = 'patient' OR patient_id IS NULL)
);
CREATE INDEX account_organisation ON account (organisation_id);

CREATE TABLE account_backup_code (
    account_id INTEGER NOT NULL REFERENCES account (id),
    -- SHA-256 of the code, hex (see mdor-service accounts::backup_codes for why not argon2id).
    code_hash TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE account_login_failure (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES account (id),
    at TEXT NOT NULL
);
CREATE INDEX account_login_failure_recent ON account_login_failure (account_id, at);
