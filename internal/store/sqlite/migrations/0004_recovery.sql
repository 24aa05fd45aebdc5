-- 0004_recovery: account recovery (internal/recovery): cases opened by
-- people who lost their second factor, reviewed by two staff members and
-- then held for a waiting period the owner can cancel; and the factor that
-- completed each session's sign-in.
--
-- Conventions as 0001_foundation: times are INTEGER Unix microseconds (UTC),
-- NULL when unset; strings NOT NULL with '' for unset; hashes and binary
-- values are BLOBs; foreign keys deferred. The status link's token is kept
-- only as its SHA-256 and the identity document only sealed (AES-GCM,
-- context "recovery-document:"+id).

-- One row per case. UpdateRecoveryCase is the read-modify-write of the
-- case's state machine (four-eyes approval, cancel, complete) inside one
-- write transaction. Lists never read the document column.
CREATE TABLE recovery_cases (
    id                 TEXT PRIMARY KEY NOT NULL,
    reference          TEXT NOT NULL UNIQUE,
    account_id         TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    state              TEXT NOT NULL DEFAULT '',
    via                TEXT NOT NULL DEFAULT '',
    status_token_hash  BLOB NOT NULL UNIQUE,
    answers            TEXT NOT NULL DEFAULT '',
    document_type      TEXT NOT NULL DEFAULT '',
    document_size      INTEGER NOT NULL DEFAULT 0,
    document           BLOB,
    ip                 TEXT NOT NULL DEFAULT '',
    user_agent         TEXT NOT NULL DEFAULT '',
    first_approver_id  TEXT NOT NULL DEFAULT '',
    first_approved_at  INTEGER,
    second_approver_id TEXT NOT NULL DEFAULT '',
    second_approved_at INTEGER,
    rejected_by        TEXT NOT NULL DEFAULT '',
    rejected_at        INTEGER,
    reject_reason      TEXT NOT NULL DEFAULT '',
    wait_until         INTEGER,
    next_notice_at     INTEGER,
    cancelled_at       INTEGER,
    cancelled_by       TEXT NOT NULL DEFAULT '',
    completed_at       INTEGER,
    created_at         INTEGER,
    updated_at         INTEGER
) STRICT;
-- An account's cases, newest first; the review queue and the worker by state.
CREATE INDEX recovery_cases_account ON recovery_cases (account_id, created_at, id);
CREATE INDEX recovery_cases_state ON recovery_cases (state, created_at, id);

-- The factor that completed the sign-in ("webauthn", "totp", "sms",
-- "backup_code", "passkey", or '' for password only).
ALTER TABLE sessions ADD COLUMN sign_in_factor TEXT NOT NULL DEFAULT '';
