-- 0001_foundation: accounts, one-time tokens, sessions, devices, pending
-- sign-ins, the audit log and the outbox.
--
-- Conventions: times are TIMESTAMPTZ (microseconds), NULL when unset;
-- strings are NOT NULL with '' for unset; hashes are BYTEA. Keys and e-mails
-- use the "C" collation so that order and paging are bytewise, as on SQLite,
-- whatever the database's locale. Foreign keys are deferred so a transaction
-- may write rows in any order.

CREATE TABLE accounts (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    email               TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL DEFAULT '',
    role                TEXT NOT NULL DEFAULT '',
    email_confirmed_at  TIMESTAMPTZ,
    locked_at           TIMESTAMPTZ,
    lock_reason         TEXT NOT NULL DEFAULT '',
    anti_phishing_code  TEXT NOT NULL DEFAULT '',
    password_changed_at TIMESTAMPTZ,
    security_hold_until TIMESTAMPTZ,
    created_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ
);

CREATE TABLE tokens (
    hash       BYTEA PRIMARY KEY,
    kind       TEXT NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    subject    TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ,
    used_at    TIMESTAMPTZ
);
CREATE INDEX tokens_account_kind ON tokens (account_id, kind);

CREATE TABLE sessions (
    id               TEXT COLLATE "C" PRIMARY KEY,
    -- The hot path: every authenticated request looks a session up by it.
    token_hash       BYTEA NOT NULL UNIQUE,
    account_id       TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    device_id        TEXT NOT NULL DEFAULT '',
    client           TEXT NOT NULL DEFAULT '',
    ip               TEXT NOT NULL DEFAULT '',
    user_agent       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ,
    last_seen_at     TIMESTAMPTZ,
    expires_at       TIMESTAMPTZ,
    second_factor_at TIMESTAMPTZ,
    revoked_at       TIMESTAMPTZ
);
CREATE INDEX sessions_account ON sessions (account_id, created_at);

CREATE TABLE devices (
    id           TEXT COLLATE "C" PRIMARY KEY,
    account_id   TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    token_hash   BYTEA,
    name         TEXT NOT NULL DEFAULT '',
    last_ip      TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ,
    approved_at  TIMESTAMPTZ,
    last_seen_at TIMESTAMPTZ
);
-- One browser may be a device of several accounts, but only once each.
CREATE UNIQUE INDEX devices_account_token ON devices (account_id, token_hash);

CREATE TABLE pending_signins (
    id         TEXT COLLATE "C" PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    state      TEXT NOT NULL DEFAULT '',
    device_id  TEXT NOT NULL DEFAULT '',
    new_device BOOLEAN NOT NULL DEFAULT false,
    code_hash  BYTEA,
    attempts   INTEGER NOT NULL DEFAULT 0,
    client     TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    factor_at  TIMESTAMPTZ,
    created_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ
);
CREATE INDEX pending_signins_expires ON pending_signins (expires_at);
CREATE INDEX pending_signins_account ON pending_signins (account_id);

-- The audit log is append-only: Seq is assigned by the store while it holds
-- the one row of audit_chain_head locked (so nodes appending at once form one
-- chain), and the triggers refuse changes so that even a bug cannot rewrite
-- history (the hash chain would reveal it anyway).
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    occurred_at TIMESTAMPTZ,
    event_type  TEXT COLLATE "C" NOT NULL,
    account_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
    actor_id    TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    device_id   TEXT NOT NULL DEFAULT '',
    data        TEXT NOT NULL DEFAULT '',
    prev_hash   BYTEA,
    hash        BYTEA
);
CREATE INDEX audit_events_account ON audit_events (account_id, seq);
CREATE INDEX audit_events_type ON audit_events (event_type, seq);

CREATE TABLE audit_chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO audit_chain_head (id) VALUES (1);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE outbox (
    id              TEXT COLLATE "C" PRIMARY KEY,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL DEFAULT '',
    subject         TEXT NOT NULL DEFAULT '',
    body            TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- NULL on an unsent message means the sender gave up on it.
    next_attempt_at TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ,
    last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX outbox_channel ON outbox (channel, created_at);
