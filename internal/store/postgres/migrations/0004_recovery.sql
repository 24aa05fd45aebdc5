-- 0004_recovery: account recovery (internal/recovery): cases opened by
-- people who lost their second factor, reviewed by two staff members and
-- then held for a waiting period the owner can cancel; and the factor that
-- completed each session's sign-in.
--
-- Conventions as 0001_foundation: TIMESTAMPTZ, NULL when unset; strings NOT
-- NULL with '' for unset; BYTEA hashes; keys in the "C" collation; foreign
-- keys deferred. UpdateRecoveryCase is SELECT ... FOR UPDATE then UPDATE in
-- one transaction, which serialises the case's state machine (four-eyes
-- approval, cancel, complete) across nodes. The status link's token is kept
-- only as its SHA-256 and the identity document only sealed (AES-GCM,
-- context "recovery-document:"+id). Lists never read the document column.

CREATE TABLE recovery_cases (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    reference          TEXT COLLATE "C" NOT NULL UNIQUE,
    account_id         TEXT COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    state              TEXT NOT NULL DEFAULT '',
    via                TEXT NOT NULL DEFAULT '',
    status_token_hash  BYTEA NOT NULL UNIQUE,
    answers            TEXT NOT NULL DEFAULT '',
    document_type      TEXT NOT NULL DEFAULT '',
    document_size      BIGINT NOT NULL DEFAULT 0,
    document           BYTEA,
    ip                 TEXT NOT NULL DEFAULT '',
    user_agent         TEXT NOT NULL DEFAULT '',
    first_approver_id  TEXT NOT NULL DEFAULT '',
    first_approved_at  TIMESTAMPTZ,
    second_approver_id TEXT NOT NULL DEFAULT '',
    second_approved_at TIMESTAMPTZ,
    rejected_by        TEXT NOT NULL DEFAULT '',
    rejected_at        TIMESTAMPTZ,
    reject_reason      TEXT NOT NULL DEFAULT '',
    wait_until         TIMESTAMPTZ,
    next_notice_at     TIMESTAMPTZ,
    cancelled_at       TIMESTAMPTZ,
    cancelled_by       TEXT NOT NULL DEFAULT '',
    completed_at       TIMESTAMPTZ,
    created_at         TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ
);
-- An account's cases, newest first; the review queue and the worker by state.
CREATE INDEX recovery_cases_account ON recovery_cases (account_id, created_at DESC NULLS LAST, id DESC);
CREATE INDEX recovery_cases_state ON recovery_cases (state, created_at DESC NULLS LAST, id DESC);

-- The factor that completed the sign-in ('webauthn', 'totp', 'sms',
-- 'backup_code', 'passkey', or '' for password only).
ALTER TABLE sessions ADD COLUMN sign_in_factor TEXT NOT NULL DEFAULT '';
