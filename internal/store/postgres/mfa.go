package postgres

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/moat-dev/moat/internal/store"
)

// The second factors (store.MFAQueries). Read-modify-writes lock the row
// they read (SELECT ... FOR UPDATE) until their transaction ends, so
// concurrent updaters of a row, on any node, are serialised; single-row
// decisions (spending a backup code, taking a ceremony) are one conditional
// statement, which a concurrent caller re-checks after waiting for the row
// lock.

// nb encodes a byte slice for a NOT NULL BYTEA column: nil is stored as an
// empty value (and comes back nil, through bs).
func nb(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Authenticator apps.

const totpCols = `account_id, secret, confirmed_at, last_used_step, created_at, last_used_at`

func scanTOTP(row pgx.Row) (store.TOTPCredential, error) {
	var c store.TOTPCredential
	err := row.Scan(&c.AccountID, bs{&c.Secret}, ts{&c.ConfirmedAt}, &c.LastUsedStep, ts{&c.CreatedAt}, ts{&c.LastUsedAt})
	return c, err
}

// CreateTOTP implements store.Queries.
func (q *queries) CreateTOTP(ctx context.Context, c store.TOTPCredential) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO totp_credentials (`+totpCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT DO NOTHING`,
		c.AccountID, nb(c.Secret), tv(c.ConfirmedAt), c.LastUsedStep, tv(c.CreatedAt), tv(c.LastUsedAt))
	return inserted("create totp", tag, err)
}

// GetTOTP implements store.Queries.
func (q *queries) GetTOTP(ctx context.Context, accountID string) (store.TOTPCredential, error) {
	return one("get totp", q.db.QueryRow(ctx, `SELECT `+totpCols+` FROM totp_credentials WHERE account_id = $1`, accountID), scanTOTP)
}

// UpdateTOTP implements store.Queries. The replay guard in fn sees the
// latest committed LastUsedStep: a concurrent updater waits at FOR UPDATE
// until this one commits, then reads the raised step.
func (q *queries) UpdateTOTP(ctx context.Context, accountID string, fn func(c *store.TOTPCredential) error) (store.TOTPCredential, error) {
	var out store.TOTPCredential
	err := q.atomic(ctx, func(tx *queries) error {
		c, err := one("update totp", tx.db.QueryRow(ctx, `SELECT `+totpCols+` FROM totp_credentials
			WHERE account_id = $1 FOR UPDATE`, accountID), scanTOTP)
		if err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		if c.AccountID != accountID {
			return errIDChanged
		}
		out, err = one("update totp", tx.db.QueryRow(ctx, `UPDATE totp_credentials SET
			secret = $1, confirmed_at = $2, last_used_step = $3, created_at = $4, last_used_at = $5
			WHERE account_id = $6 RETURNING `+totpCols,
			nb(c.Secret), tv(c.ConfirmedAt), c.LastUsedStep, tv(c.CreatedAt), tv(c.LastUsedAt), accountID), scanTOTP)
		return err
	})
	return out, err
}

// DeleteTOTP implements store.Queries.
func (q *queries) DeleteTOTP(ctx context.Context, accountID string) error {
	tag, err := q.db.Exec(ctx, `DELETE FROM totp_credentials WHERE account_id = $1`, accountID)
	return mustAffect("delete totp", tag, err)
}

// Backup codes.

// backupCodesLock is the first key of the transaction-scoped advisory lock
// that serialises ReplaceBackupCodes per account (the second key is a hash
// of the account ID; a collision only makes two accounts wait for each
// other).
const backupCodesLock = 0x6d6f6231 // "mob1"

// ReplaceBackupCodes implements store.Queries. Duplicates are refused
// before anything is written, so inside a caller's transaction a refusal
// leaves the old set in place.
//
// Two replacements of one account must not interleave: at READ COMMITTED
// the second one's DELETE would not see the rows the first one inserts,
// and the account would end up with both sets. An advisory lock per
// account, held until commit, puts them one after the other.
func (q *queries) ReplaceBackupCodes(ctx context.Context, accountID string, codes []store.BackupCode) error {
	if duplicateHash(codes) {
		return store.ErrAlreadyExists
	}
	return q.atomic(ctx, func(tx *queries) error {
		if _, err := tx.db.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(backupCodesLock), accountID); err != nil {
			return mapErr("replace backup codes", err)
		}
		if _, err := tx.db.Exec(ctx, `DELETE FROM backup_codes WHERE account_id = $1`, accountID); err != nil {
			return mapErr("replace backup codes", err)
		}
		for _, c := range codes {
			if _, err := tx.db.Exec(ctx, `INSERT INTO backup_codes (account_id, hash, created_at, used_at)
				VALUES ($1, $2, $3, $4)`, accountID, nb(c.Hash), tv(c.CreatedAt), tv(c.UsedAt)); err != nil {
				return mapErr("replace backup codes", err)
			}
		}
		return nil
	})
}

// duplicateHash reports whether two codes share a hash.
func duplicateHash(codes []store.BackupCode) bool {
	for i := range codes {
		for j := range i {
			if bytes.Equal(codes[i].Hash, codes[j].Hash) {
				return true
			}
		}
	}
	return false
}

// SpendBackupCode implements store.Queries. The conditional UPDATE is the
// decision (a concurrent spender waits for the row lock, then finds used_at
// set); the follow-up read only tells a used code from an unknown one.
func (q *queries) SpendBackupCode(ctx context.Context, accountID string, hash []byte, at time.Time) error {
	tag, err := q.db.Exec(ctx, `UPDATE backup_codes SET used_at = $1
		WHERE account_id = $2 AND hash = $3 AND used_at IS NULL`, tv(at), accountID, hash)
	if err := mustAffect("spend backup code", tag, err); !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var n int
	if err := q.db.QueryRow(ctx, `SELECT count(*) FROM backup_codes WHERE account_id = $1 AND hash = $2`,
		accountID, hash).Scan(&n); err != nil {
		return mapErr("spend backup code", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return store.ErrTokenUsed
}

// CountBackupCodes implements store.Queries.
func (q *queries) CountBackupCodes(ctx context.Context, accountID string) (int, error) {
	var n int
	err := q.db.QueryRow(ctx, `SELECT count(*) FROM backup_codes WHERE account_id = $1 AND used_at IS NULL`,
		accountID).Scan(&n)
	return n, mapErr("count backup codes", err)
}

// SMS.

const phoneCols = `account_id, number, verified_at, created_at, last_used_at`

func scanPhone(row pgx.Row) (store.SMSPhone, error) {
	var p store.SMSPhone
	err := row.Scan(&p.AccountID, &p.Number, ts{&p.VerifiedAt}, ts{&p.CreatedAt}, ts{&p.LastUsedAt})
	return p, err
}

// CreateSMSPhone implements store.Queries.
func (q *queries) CreateSMSPhone(ctx context.Context, p store.SMSPhone) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO sms_phones (`+phoneCols+`) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`,
		p.AccountID, p.Number, tv(p.VerifiedAt), tv(p.CreatedAt), tv(p.LastUsedAt))
	return inserted("create sms phone", tag, err)
}

// GetSMSPhone implements store.Queries.
func (q *queries) GetSMSPhone(ctx context.Context, accountID string) (store.SMSPhone, error) {
	return one("get sms phone", q.db.QueryRow(ctx, `SELECT `+phoneCols+` FROM sms_phones WHERE account_id = $1`, accountID), scanPhone)
}

// UpdateSMSPhone implements store.Queries.
func (q *queries) UpdateSMSPhone(ctx context.Context, accountID string, fn func(p *store.SMSPhone) error) (store.SMSPhone, error) {
	var out store.SMSPhone
	err := q.atomic(ctx, func(tx *queries) error {
		p, err := one("update sms phone", tx.db.QueryRow(ctx, `SELECT `+phoneCols+` FROM sms_phones
			WHERE account_id = $1 FOR UPDATE`, accountID), scanPhone)
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		if p.AccountID != accountID {
			return errIDChanged
		}
		out, err = one("update sms phone", tx.db.QueryRow(ctx, `UPDATE sms_phones SET
			number = $1, verified_at = $2, created_at = $3, last_used_at = $4
			WHERE account_id = $5 RETURNING `+phoneCols,
			p.Number, tv(p.VerifiedAt), tv(p.CreatedAt), tv(p.LastUsedAt), accountID), scanPhone)
		return err
	})
	return out, err
}

// DeleteSMSPhone implements store.Queries: the phone and its outstanding
// code go together.
func (q *queries) DeleteSMSPhone(ctx context.Context, accountID string) error {
	return q.atomic(ctx, func(tx *queries) error {
		tag, err := tx.db.Exec(ctx, `DELETE FROM sms_phones WHERE account_id = $1`, accountID)
		if err := mustAffect("delete sms phone", tag, err); err != nil {
			return err
		}
		_, err = tx.db.Exec(ctx, `DELETE FROM sms_codes WHERE account_id = $1`, accountID)
		return mapErr("delete sms phone", err)
	})
}

const smsCodeCols = `account_id, purpose, number, code_hash, attempts, created_at, expires_at, used_at`

func scanSMSCode(row pgx.Row) (store.SMSCode, error) {
	var c store.SMSCode
	err := row.Scan(&c.AccountID, &c.Purpose, &c.Number, bs{&c.CodeHash}, &c.Attempts,
		ts{&c.CreatedAt}, ts{&c.ExpiresAt}, ts{&c.UsedAt})
	return c, err
}

// PutSMSCode implements store.Queries: one statement inserts the code or
// overwrites the account's previous one.
func (q *queries) PutSMSCode(ctx context.Context, c store.SMSCode) error {
	_, err := q.db.Exec(ctx, `INSERT INTO sms_codes (`+smsCodeCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (account_id) DO UPDATE SET
			purpose = excluded.purpose, number = excluded.number, code_hash = excluded.code_hash,
			attempts = excluded.attempts, created_at = excluded.created_at,
			expires_at = excluded.expires_at, used_at = excluded.used_at`,
		c.AccountID, c.Purpose, c.Number, nb(c.CodeHash), c.Attempts, tv(c.CreatedAt), tv(c.ExpiresAt), tv(c.UsedAt))
	return mapErr("put sms code", err)
}

// UpdateSMSCode implements store.Queries.
func (q *queries) UpdateSMSCode(ctx context.Context, accountID string, fn func(c *store.SMSCode) error) (store.SMSCode, error) {
	var out store.SMSCode
	err := q.atomic(ctx, func(tx *queries) error {
		c, err := one("update sms code", tx.db.QueryRow(ctx, `SELECT `+smsCodeCols+` FROM sms_codes
			WHERE account_id = $1 FOR UPDATE`, accountID), scanSMSCode)
		if err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		if c.AccountID != accountID {
			return errIDChanged
		}
		out, err = one("update sms code", tx.db.QueryRow(ctx, `UPDATE sms_codes SET
			purpose = $1, number = $2, code_hash = $3, attempts = $4, created_at = $5, expires_at = $6, used_at = $7
			WHERE account_id = $8 RETURNING `+smsCodeCols,
			c.Purpose, c.Number, nb(c.CodeHash), c.Attempts, tv(c.CreatedAt), tv(c.ExpiresAt), tv(c.UsedAt),
			accountID), scanSMSCode)
		return err
	})
	return out, err
}

// Security keys and passkeys.

const keyCols = `id, account_id, credential_id, name, public_key, attestation_type, attestation_format,
	aaguid, transports, sign_count, user_verified, backup_eligible, backup_state, attachment,
	discoverable, created_at, last_used_at`

func scanKey(row pgx.Row) (store.WebAuthnCredential, error) {
	var k store.WebAuthnCredential
	err := row.Scan(&k.ID, &k.AccountID, bs{&k.CredentialID}, &k.Name, bs{&k.PublicKey}, &k.AttestationType,
		&k.AttestationFormat, bs{&k.AAGUID}, &k.Transports, &k.SignCount, &k.UserVerified, &k.BackupEligible,
		&k.BackupState, &k.Attachment, &k.Discoverable, ts{&k.CreatedAt}, ts{&k.LastUsedAt})
	return k, err
}

// CreateWebAuthnCredential implements store.Queries. ON CONFLICT DO
// NOTHING covers both the ID and the credential ID.
func (q *queries) CreateWebAuthnCredential(ctx context.Context, k store.WebAuthnCredential) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO webauthn_credentials (`+keyCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
		ON CONFLICT DO NOTHING`,
		k.ID, k.AccountID, nb(k.CredentialID), k.Name, nb(k.PublicKey), k.AttestationType, k.AttestationFormat,
		bv(k.AAGUID), k.Transports, k.SignCount, k.UserVerified, k.BackupEligible, k.BackupState, k.Attachment,
		k.Discoverable, tv(k.CreatedAt), tv(k.LastUsedAt))
	return inserted("create webauthn credential", tag, err)
}

// ListWebAuthnCredentials implements store.Queries.
func (q *queries) ListWebAuthnCredentials(ctx context.Context, accountID string) ([]store.WebAuthnCredential, error) {
	rows, err := q.db.Query(ctx, `SELECT `+keyCols+` FROM webauthn_credentials
		WHERE account_id = $1 ORDER BY created_at ASC NULLS FIRST, id`, accountID)
	return collect("list webauthn credentials", rows, err, scanKey)
}

// GetWebAuthnCredentialByCredentialID implements store.Queries.
func (q *queries) GetWebAuthnCredentialByCredentialID(ctx context.Context, credentialID []byte) (store.WebAuthnCredential, error) {
	return one("get webauthn credential", q.db.QueryRow(ctx, `SELECT `+keyCols+` FROM webauthn_credentials
		WHERE credential_id = $1`, credentialID), scanKey)
}

// UpdateWebAuthnCredential implements store.Queries. Changing CredentialID
// to one that is taken returns store.ErrAlreadyExists; that UPDATE runs
// under a savepoint so a caller's transaction stays usable.
func (q *queries) UpdateWebAuthnCredential(ctx context.Context, id string, fn func(k *store.WebAuthnCredential) error) (store.WebAuthnCredential, error) {
	var out store.WebAuthnCredential
	err := q.atomic(ctx, func(tx *queries) error {
		old, err := one("update webauthn credential", tx.db.QueryRow(ctx, `SELECT `+keyCols+` FROM webauthn_credentials
			WHERE id = $1 FOR UPDATE`, id), scanKey)
		if err != nil {
			return err
		}
		k := old
		if err := fn(&k); err != nil {
			return err
		}
		if k.ID != id {
			return errIDChanged
		}
		update := func(db dbtx) (err error) {
			out, err = one("update webauthn credential", db.QueryRow(ctx, `UPDATE webauthn_credentials SET
				account_id = $1, credential_id = $2, name = $3, public_key = $4, attestation_type = $5,
				attestation_format = $6, aaguid = $7, transports = $8, sign_count = $9, user_verified = $10,
				backup_eligible = $11, backup_state = $12, attachment = $13, discoverable = $14, created_at = $15,
				last_used_at = $16
				WHERE id = $17 RETURNING `+keyCols,
				k.AccountID, nb(k.CredentialID), k.Name, nb(k.PublicKey), k.AttestationType,
				k.AttestationFormat, bv(k.AAGUID), k.Transports, k.SignCount, k.UserVerified,
				k.BackupEligible, k.BackupState, k.Attachment, k.Discoverable, tv(k.CreatedAt),
				tv(k.LastUsedAt), id), scanKey)
			return err
		}
		if !bytes.Equal(k.CredentialID, old.CredentialID) {
			return tx.guarded(ctx, update)
		}
		return update(tx.db)
	})
	return out, err
}

// DeleteWebAuthnCredential implements store.Queries.
func (q *queries) DeleteWebAuthnCredential(ctx context.Context, accountID, id string) error {
	tag, err := q.db.Exec(ctx, `DELETE FROM webauthn_credentials WHERE id = $1 AND account_id = $2`, id, accountID)
	return mustAffect("delete webauthn credential", tag, err)
}

// WebAuthn ceremonies.

const ceremonyCols = `id, account_id, kind, data, created_at, expires_at`

func scanCeremony(row pgx.Row) (store.WebAuthnCeremony, error) {
	var c store.WebAuthnCeremony
	err := row.Scan(&c.ID, &c.AccountID, &c.Kind, bs{&c.Data}, ts{&c.CreatedAt}, ts{&c.ExpiresAt})
	return c, err
}

// CreateWebAuthnCeremony implements store.Queries.
func (q *queries) CreateWebAuthnCeremony(ctx context.Context, c store.WebAuthnCeremony) error {
	tag, err := q.db.Exec(ctx, `INSERT INTO webauthn_ceremonies (`+ceremonyCols+`) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT DO NOTHING`,
		c.ID, c.AccountID, c.Kind, nb(c.Data), tv(c.CreatedAt), tv(c.ExpiresAt))
	return inserted("create webauthn ceremony", tag, err)
}

// TakeWebAuthnCeremony implements store.Queries: DELETE ... RETURNING hands
// the row to exactly one caller (another waits for the row lock, then finds
// the row gone).
func (q *queries) TakeWebAuthnCeremony(ctx context.Context, id string) (store.WebAuthnCeremony, error) {
	return one("take webauthn ceremony", q.db.QueryRow(ctx, `DELETE FROM webauthn_ceremonies
		WHERE id = $1 RETURNING `+ceremonyCols, id), scanCeremony)
}

// DeleteExpiredWebAuthnCeremonies implements store.Queries.
func (q *queries) DeleteExpiredWebAuthnCeremonies(ctx context.Context, now time.Time) (int, error) {
	tag, err := q.db.Exec(ctx, `DELETE FROM webauthn_ceremonies WHERE expires_at IS NULL OR expires_at < $1`,
		now.Truncate(time.Microsecond))
	if err != nil {
		return 0, mapErr("delete expired webauthn ceremonies", err)
	}
	return int(tag.RowsAffected()), nil
}

// Settings.

const settingsCols = `account_id, signin, funding, trading, updated_at, factors_changed_at`

func scanSettings(row pgx.Row) (store.MFASettings, error) {
	var s store.MFASettings
	err := row.Scan(&s.AccountID, &s.SignIn, &s.Funding, &s.Trading, ts{&s.UpdatedAt}, ts{&s.FactorsChangedAt})
	return s, err
}

// GetMFASettings implements store.Queries.
func (q *queries) GetMFASettings(ctx context.Context, accountID string) (store.MFASettings, error) {
	return one("get mfa settings", q.db.QueryRow(ctx, `SELECT `+settingsCols+` FROM mfa_settings WHERE account_id = $1`, accountID), scanSettings)
}

// UpdateMFASettings implements store.Queries. The row is created first if
// missing (a concurrent creator waits for the first one's commit, then does
// nothing), and the FOR UPDATE lock is the per-account lock for factor
// changes until the transaction ends. The zero row inserted for an account
// without settings is removed again if fn fails, so a failed update inside
// a caller's transaction leaves nothing behind.
func (q *queries) UpdateMFASettings(ctx context.Context, accountID string, fn func(s *store.MFASettings) error) (store.MFASettings, error) {
	var out store.MFASettings
	err := q.atomic(ctx, func(tx *queries) error {
		tag, err := tx.db.Exec(ctx, `INSERT INTO mfa_settings (account_id) VALUES ($1)
			ON CONFLICT (account_id) DO NOTHING`, accountID)
		if err != nil {
			return mapErr("update mfa settings", err)
		}
		created := tag.RowsAffected() > 0
		s, err := one("update mfa settings", tx.db.QueryRow(ctx, `SELECT `+settingsCols+` FROM mfa_settings
			WHERE account_id = $1 FOR UPDATE`, accountID), scanSettings)
		if err != nil {
			return err
		}
		err = fn(&s)
		if err == nil && s.AccountID != accountID {
			err = errIDChanged
		}
		if err != nil {
			if created {
				if _, derr := tx.db.Exec(ctx, `DELETE FROM mfa_settings WHERE account_id = $1`, accountID); derr != nil {
					return mapErr("update mfa settings", derr)
				}
			}
			return err
		}
		out, err = one("update mfa settings", tx.db.QueryRow(ctx, `UPDATE mfa_settings SET
			signin = $1, funding = $2, trading = $3, updated_at = $4, factors_changed_at = $5
			WHERE account_id = $6 RETURNING `+settingsCols,
			s.SignIn, s.Funding, s.Trading, tv(s.UpdatedAt), tv(s.FactorsChangedAt), accountID), scanSettings)
		return err
	})
	return out, err
}
