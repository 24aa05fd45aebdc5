-- 0002_apikeys: API keys for the signed API, and the built-in sandbox
-- exchange's per-account books.
--
-- An API secret is never stored in plain text: secret_sealed and
-- old_secret_sealed hold AES-GCM ciphertext bound to the key's ID, and the
-- key password only as a keyed hash. Deleted keys stay (deleted_at set) for
-- the audit trail.

CREATE TABLE api_keys (
    id                     TEXT PRIMARY KEY NOT NULL,
    account_id             TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    name                   TEXT NOT NULL,
    -- The hot path: every signed call looks its key up by it.
    public_key             TEXT NOT NULL UNIQUE,
    secret_sealed          BLOB NOT NULL,
    permissions            TEXT NOT NULL DEFAULT '',
    allowed_ips            TEXT NOT NULL DEFAULT '',
    expires_at             INTEGER,
    nonce_window           INTEGER NOT NULL DEFAULT 0,
    password_hash          BLOB,
    query_start            INTEGER,
    query_end              INTEGER,
    created_at             INTEGER,
    updated_at             INTEGER,
    last_used_at           INTEGER,
    last_used_ip           TEXT NOT NULL DEFAULT '',
    rotated_at             INTEGER,
    old_secret_sealed      BLOB,
    old_secret_valid_until INTEGER,
    deleted_at             INTEGER
) STRICT;
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);

-- One document per account (balances and orders, encoded by
-- internal/sandbox). updated_at is the database's clock, for operators only.
CREATE TABLE sandbox_books (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    data       BLOB NOT NULL,
    updated_at INTEGER
) STRICT;
