-- 0003_mfa: second factors (internal/mfa): authenticator apps, backup
-- codes, SMS phones and codes, security keys and passkeys, WebAuthn
-- ceremonies in progress, and per-account 2FA settings.
--
-- Conventions as 0001_foundation: TIMESTAMPTZ, NULL when unset; strings NOT
-- NULL with '' for unset; BYTEA hashes; keys in the "C" collation; foreign
-- keys deferred. Atomic updates (UpdateX) are SELECT ... FOR UPDATE then
-- UPDATE in one transaction. Codes are kept only as keyed hashes and TOTP
-- seeds only sealed (AES-GCM).

CREATE TABLE totp_credentials (
    account_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    secret         BYTEA NOT NULL,
    confirmed_at   TIMESTAMPTZ,
    last_used_step BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ,
    last_used_at   TIMESTAMPTZ
);

CREATE TABLE backup_codes (
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    hash       BYTEA NOT NULL,
    created_at TIMESTAMPTZ,
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (account_id, hash)
);

CREATE TABLE sms_phones (
    account_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    number       TEXT NOT NULL,
    verified_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE TABLE sms_codes (
    account_id TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    purpose    TEXT NOT NULL DEFAULT '',
    number     TEXT NOT NULL DEFAULT '',
    code_hash  BYTEA NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    used_at    TIMESTAMPTZ
);

CREATE TABLE webauthn_credentials (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    account_id         TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    credential_id      BYTEA NOT NULL UNIQUE,
    name               TEXT NOT NULL DEFAULT '',
    public_key         BYTEA NOT NULL,
    attestation_type   TEXT NOT NULL DEFAULT '',
    attestation_format TEXT NOT NULL DEFAULT '',
    aaguid             BYTEA,
    transports         TEXT NOT NULL DEFAULT '',
    sign_count         BIGINT NOT NULL DEFAULT 0,
    user_verified      BOOLEAN NOT NULL DEFAULT false,
    backup_eligible    BOOLEAN NOT NULL DEFAULT false,
    backup_state       BOOLEAN NOT NULL DEFAULT false,
    attachment         TEXT NOT NULL DEFAULT '',
    discoverable       BOOLEAN NOT NULL DEFAULT false,
    created_at         TIMESTAMPTZ,
    last_used_at       TIMESTAMPTZ
);
CREATE INDEX webauthn_credentials_account ON webauthn_credentials (account_id, created_at NULLS FIRST, id);

CREATE TABLE webauthn_ceremonies (
    id         TEXT COLLATE "C" PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    kind       TEXT NOT NULL DEFAULT '',
    data       BYTEA NOT NULL,
    created_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ
);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies (expires_at);

CREATE TABLE mfa_settings (
    account_id         TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    signin             BOOLEAN NOT NULL DEFAULT false,
    funding            BOOLEAN NOT NULL DEFAULT false,
    trading            BOOLEAN NOT NULL DEFAULT false,
    updated_at         TIMESTAMPTZ,
    factors_changed_at TIMESTAMPTZ
);
