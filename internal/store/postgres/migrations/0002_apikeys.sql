-- 0002_apikeys: API keys for the signed API, and the built-in sandbox
-- exchange's per-account books.
--
-- An API secret is never stored in plain text: secret_sealed and
-- old_secret_sealed hold AES-GCM ciphertext bound to the key's ID, and the
-- key password only as a keyed hash. Deleted keys stay (deleted_at set) for
-- the audit trail.

CREATE TABLE api_keys (
    id                     TEXT COLLATE "C" PRIMARY KEY,
    account_id             TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    name                   TEXT NOT NULL,
    -- The hot path: every signed call looks its key up by it.
    public_key             TEXT COLLATE "C" NOT NULL UNIQUE,
    secret_sealed          BYTEA NOT NULL,
    permissions            TEXT NOT NULL DEFAULT '',
    allowed_ips            TEXT NOT NULL DEFAULT '',
    expires_at             TIMESTAMPTZ,
    nonce_window           BIGINT NOT NULL DEFAULT 0,
    password_hash          BYTEA,
    query_start            TIMESTAMPTZ,
    query_end              TIMESTAMPTZ,
    created_at             TIMESTAMPTZ,
    updated_at             TIMESTAMPTZ,
    last_used_at           TIMESTAMPTZ,
    last_used_ip           TEXT NOT NULL DEFAULT '',
    rotated_at             TIMESTAMPTZ,
    old_secret_sealed      BYTEA,
    old_secret_valid_until TIMESTAMPTZ,
    deleted_at             TIMESTAMPTZ
);
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);

-- One document per account (balances and orders, encoded by
-- internal/sandbox). updated_at is the database's clock, for operators only.
CREATE TABLE sandbox_books (
    account_id TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    data       BYTEA NOT NULL,
    updated_at TIMESTAMPTZ
);
