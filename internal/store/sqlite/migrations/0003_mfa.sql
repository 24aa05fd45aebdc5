-- 0003_mfa: second factors (internal/mfa): authenticator apps, backup
-- codes, SMS phones and codes, security keys and passkeys, WebAuthn
-- ceremonies in progress, and per-account 2FA settings.
--
-- Conventions as 0001_foundation: times are INTEGER Unix microseconds (UTC),
-- NULL when unset; strings NOT NULL with '' for unset; hashes and binary
-- values are BLOBs; foreign keys deferred. Codes are kept only as keyed
-- hashes and TOTP seeds only sealed (AES-GCM).

-- One authenticator app per account: the account is the key. The seed is
-- sealed (AES-GCM, context "totp:"+account_id). last_used_step is the replay
-- guard, raised by UpdateTOTP inside one write transaction.
CREATE TABLE totp_credentials (
    account_id     TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    secret         BLOB NOT NULL,
    confirmed_at   INTEGER,
    last_used_step INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER,
    last_used_at   INTEGER
) STRICT;

-- Backup codes: HMAC-SHA256 of the code only. SpendBackupCode is
-- UPDATE ... SET used_at = ? WHERE account_id = ? AND hash = ? AND used_at IS NULL
-- (one row affected wins; otherwise look the row up to tell used from unknown).
CREATE TABLE backup_codes (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    hash       BLOB NOT NULL,
    created_at INTEGER,
    used_at    INTEGER,
    PRIMARY KEY (account_id, hash)
) STRICT;

-- The SMS phone (one per account) and its one outstanding code.
CREATE TABLE sms_phones (
    account_id   TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    number       TEXT NOT NULL,
    verified_at  INTEGER,
    created_at   INTEGER,
    last_used_at INTEGER
) STRICT;

CREATE TABLE sms_codes (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    purpose    TEXT NOT NULL DEFAULT '',
    number     TEXT NOT NULL DEFAULT '',
    code_hash  BLOB NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER,
    expires_at INTEGER,
    used_at    INTEGER
) STRICT;

-- Security keys and passkeys. credential_id is unique across accounts: an
-- authenticator's credential belongs to one account.
CREATE TABLE webauthn_credentials (
    id                 TEXT PRIMARY KEY NOT NULL,
    account_id         TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    credential_id      BLOB NOT NULL UNIQUE,
    name               TEXT NOT NULL DEFAULT '',
    public_key         BLOB NOT NULL,
    attestation_type   TEXT NOT NULL DEFAULT '',
    attestation_format TEXT NOT NULL DEFAULT '',
    aaguid             BLOB,
    transports         TEXT NOT NULL DEFAULT '',
    sign_count         INTEGER NOT NULL DEFAULT 0,
    user_verified      INTEGER NOT NULL DEFAULT 0,
    backup_eligible    INTEGER NOT NULL DEFAULT 0,
    backup_state       INTEGER NOT NULL DEFAULT 0,
    attachment         TEXT NOT NULL DEFAULT '',
    discoverable       INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER,
    last_used_at       INTEGER
) STRICT;
CREATE INDEX webauthn_credentials_account ON webauthn_credentials (account_id, created_at, id);

-- Ceremonies between begin and finish. account_id is '' for a passwordless
-- sign-in, so it has no foreign key. TakeWebAuthnCeremony is
-- DELETE ... WHERE id = ? RETURNING ...
CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL DEFAULT '',
    kind       TEXT NOT NULL DEFAULT '',
    data       BLOB NOT NULL,
    created_at INTEGER,
    expires_at INTEGER
) STRICT;
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);

-- Per-account 2FA settings; the row is also the per-account lock for factor
-- changes (UpdateMFASettings: INSERT ... ON CONFLICT DO NOTHING, then the
-- read-modify-write in the same write transaction).
CREATE TABLE mfa_settings (
    account_id         TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    signin             INTEGER NOT NULL DEFAULT 0,
    funding            INTEGER NOT NULL DEFAULT 0,
    trading            INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER,
    factors_changed_at INTEGER
) STRICT;
