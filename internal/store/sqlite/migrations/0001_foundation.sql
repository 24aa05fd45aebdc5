-- 0001_foundation: accounts, one-time tokens, sessions, devices, pending
-- sign-ins, the audit log and the outbox.
--
-- Conventions: times are INTEGER Unix microseconds (UTC), NULL when unset;
-- strings are NOT NULL with '' for unset; hashes are BLOBs. Foreign keys are
-- deferred so a transaction may write rows in any order.

CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY NOT NULL,
    email               TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL DEFAULT '',
    role                TEXT NOT NULL DEFAULT '',
    email_confirmed_at  INTEGER,
    locked_at           INTEGER,
    lock_reason         TEXT NOT NULL DEFAULT '',
    anti_phishing_code  TEXT NOT NULL DEFAULT '',
    password_changed_at INTEGER,
    security_hold_until INTEGER,
    created_at          INTEGER,
    updated_at          INTEGER
) STRICT;

CREATE TABLE tokens (
    hash       BLOB PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    subject    TEXT NOT NULL DEFAULT '',
    created_at INTEGER,
    expires_at INTEGER,
    used_at    INTEGER
) STRICT;
CREATE INDEX tokens_account_kind ON tokens (account_id, kind);

CREATE TABLE sessions (
    id               TEXT PRIMARY KEY NOT NULL,
    -- The hot path: every authenticated request looks a session up by it.
    token_hash       BLOB NOT NULL UNIQUE,
    account_id       TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    device_id        TEXT NOT NULL DEFAULT '',
    client           TEXT NOT NULL DEFAULT '',
    ip               TEXT NOT NULL DEFAULT '',
    user_agent       TEXT NOT NULL DEFAULT '',
    created_at       INTEGER,
    last_seen_at     INTEGER,
    expires_at       INTEGER,
    second_factor_at INTEGER,
    revoked_at       INTEGER
) STRICT;
CREATE INDEX sessions_account ON sessions (account_id, created_at);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    token_hash   BLOB,
    name         TEXT NOT NULL DEFAULT '',
    last_ip      TEXT NOT NULL DEFAULT '',
    created_at   INTEGER,
    approved_at  INTEGER,
    last_seen_at INTEGER
) STRICT;
-- One browser may be a device of several accounts, but only once each.
CREATE UNIQUE INDEX devices_account_token ON devices (account_id, token_hash);

CREATE TABLE pending_signins (
    id         TEXT PRIMARY KEY NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    state      TEXT NOT NULL DEFAULT '',
    device_id  TEXT NOT NULL DEFAULT '',
    new_device INTEGER NOT NULL DEFAULT 0,
    code_hash  BLOB,
    attempts   INTEGER NOT NULL DEFAULT 0,
    client     TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    factor_at  INTEGER,
    created_at INTEGER,
    expires_at INTEGER
) STRICT;
CREATE INDEX pending_signins_expires ON pending_signins (expires_at);

-- The audit log is append-only: Seq is assigned by the store under the write
-- lock, and the triggers refuse changes so that even a bug cannot rewrite
-- history (the hash chain would reveal it anyway).
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY NOT NULL,
    occurred_at INTEGER,
    event_type  TEXT NOT NULL,
    account_id  TEXT NOT NULL DEFAULT '',
    actor_id    TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    device_id   TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL DEFAULT '',
    prev_hash   BLOB,
    hash        BLOB
) STRICT;
CREATE INDEX audit_events_account ON audit_events (account_id, seq);
CREATE INDEX audit_events_type ON audit_events (event_type, seq);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL DEFAULT '',
    subject         TEXT NOT NULL DEFAULT '',
    body            TEXT NOT NULL DEFAULT '',
    created_at      INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- NULL on an unsent message means the sender gave up on it.
    next_attempt_at INTEGER,
    sent_at         INTEGER,
    last_error      TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX outbox_channel ON outbox (channel, created_at);
