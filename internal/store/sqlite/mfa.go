package sqlite

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// The second factors (store.MFAQueries). Read-modify-writes run in a write
// transaction (BEGIN IMMEDIATE on the one writer connection), so concurrent
// updaters of a row are serialised; single-row decisions (spending a backup
// code, taking a ceremony) are one conditional statement.

// nb encodes a byte slice for a NOT NULL BLOB column: nil is stored as an
// empty BLOB (and comes back nil, through bs).
func nb(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Authenticator apps.

const totpCols = `account_id, secret, confirmed_at, last_used_step, created_at, last_used_at`

func scanTOTP(sc scanner) (store.TOTPCredential, error) {
	var c store.TOTPCredential
	err := sc.Scan(&c.AccountID, bs{&c.Secret}, ts{&c.ConfirmedAt}, &c.LastUsedStep, ts{&c.CreatedAt}, ts{&c.LastUsedAt})
	return c, err
}

// CreateTOTP implements store.Queries.
func (q *queries) CreateTOTP(ctx context.Context, c store.TOTPCredential) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO totp_credentials (`+totpCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		c.AccountID, nb(c.Secret), tv(c.ConfirmedAt), c.LastUsedStep, tv(c.CreatedAt), tv(c.LastUsedAt))
	return mapErr("create totp", err)
}

// GetTOTP implements store.Queries.
func (q *queries) GetTOTP(ctx context.Context, accountID string) (store.TOTPCredential, error) {
	return one("get totp", q.r.QueryRowContext(ctx, `SELECT `+totpCols+` FROM totp_credentials WHERE account_id = ?`, accountID), scanTOTP)
}

// UpdateTOTP implements store.Queries. The replay guard in fn sees the
// latest committed LastUsedStep because the read and the write share one
// write transaction.
func (q *queries) UpdateTOTP(ctx context.Context, accountID string, fn func(c *store.TOTPCredential) error) (store.TOTPCredential, error) {
	var out store.TOTPCredential
	err := q.atomic(ctx, func(tx *queries) error {
		c, err := one("update totp", tx.w.QueryRowContext(ctx, `SELECT `+totpCols+` FROM totp_credentials WHERE account_id = ?`, accountID), scanTOTP)
		if err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		if c.AccountID != accountID {
			return errIDChanged
		}
		out, err = one("update totp", tx.w.QueryRowContext(ctx, `UPDATE totp_credentials SET
			secret = ?, confirmed_at = ?, last_used_step = ?, created_at = ?, last_used_at = ?
			WHERE account_id = ? RETURNING `+totpCols,
			nb(c.Secret), tv(c.ConfirmedAt), c.LastUsedStep, tv(c.CreatedAt), tv(c.LastUsedAt), accountID), scanTOTP)
		return err
	})
	return out, err
}

// DeleteTOTP implements store.Queries.
func (q *queries) DeleteTOTP(ctx context.Context, accountID string) error {
	res, err := q.w.ExecContext(ctx, `DELETE FROM totp_credentials WHERE account_id = ?`, accountID)
	return mustAffect("delete totp", res, err)
}

// Backup codes.

// ReplaceBackupCodes implements store.Queries. Duplicates are refused
// before anything is written, so inside a caller's transaction a refusal
// leaves the old set in place.
func (q *queries) ReplaceBackupCodes(ctx context.Context, accountID string, codes []store.BackupCode) error {
	if duplicateHash(codes) {
		return store.ErrAlreadyExists
	}
	return q.atomic(ctx, func(tx *queries) error {
		if _, err := tx.w.ExecContext(ctx, `DELETE FROM backup_codes WHERE account_id = ?`, accountID); err != nil {
			return mapErr("replace backup codes", err)
		}
		for _, c := range codes {
			if _, err := tx.w.ExecContext(ctx, `INSERT INTO backup_codes (account_id, hash, created_at, used_at)
				VALUES (?, ?, ?, ?)`, accountID, nb(c.Hash), tv(c.CreatedAt), tv(c.UsedAt)); err != nil {
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
// decision; the follow-up read only tells a used code from an unknown one.
func (q *queries) SpendBackupCode(ctx context.Context, accountID string, hash []byte, at time.Time) error {
	res, err := q.w.ExecContext(ctx, `UPDATE backup_codes SET used_at = ?
		WHERE account_id = ? AND hash = ? AND used_at IS NULL`, tv(at), accountID, hash)
	if err := mustAffect("spend backup code", res, err); !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var n int
	if err := q.w.QueryRowContext(ctx, `SELECT count(*) FROM backup_codes WHERE account_id = ? AND hash = ?`,
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
	err := q.r.QueryRowContext(ctx, `SELECT count(*) FROM backup_codes WHERE account_id = ? AND used_at IS NULL`,
		accountID).Scan(&n)
	return n, mapErr("count backup codes", err)
}

// SMS.

const phoneCols = `account_id, number, verified_at, created_at, last_used_at`

func scanPhone(sc scanner) (store.SMSPhone, error) {
	var p store.SMSPhone
	err := sc.Scan(&p.AccountID, &p.Number, ts{&p.VerifiedAt}, ts{&p.CreatedAt}, ts{&p.LastUsedAt})
	return p, err
}

// CreateSMSPhone implements store.Queries.
func (q *queries) CreateSMSPhone(ctx context.Context, p store.SMSPhone) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO sms_phones (`+phoneCols+`) VALUES (?, ?, ?, ?, ?)`,
		p.AccountID, p.Number, tv(p.VerifiedAt), tv(p.CreatedAt), tv(p.LastUsedAt))
	return mapErr("create sms phone", err)
}

// GetSMSPhone implements store.Queries.
func (q *queries) GetSMSPhone(ctx context.Context, accountID string) (store.SMSPhone, error) {
	return one("get sms phone", q.r.QueryRowContext(ctx, `SELECT `+phoneCols+` FROM sms_phones WHERE account_id = ?`, accountID), scanPhone)
}

// UpdateSMSPhone implements store.Queries.
func (q *queries) UpdateSMSPhone(ctx context.Context, accountID string, fn func(p *store.SMSPhone) error) (store.SMSPhone, error) {
	var out store.SMSPhone
	err := q.atomic(ctx, func(tx *queries) error {
		p, err := one("update sms phone", tx.w.QueryRowContext(ctx, `SELECT `+phoneCols+` FROM sms_phones WHERE account_id = ?`, accountID), scanPhone)
		if err != nil {
			return err
		}
		if err := fn(&p); err != nil {
			return err
		}
		if p.AccountID != accountID {
			return errIDChanged
		}
		out, err = one("update sms phone", tx.w.QueryRowContext(ctx, `UPDATE sms_phones SET
			number = ?, verified_at = ?, created_at = ?, last_used_at = ?
			WHERE account_id = ? RETURNING `+phoneCols,
			p.Number, tv(p.VerifiedAt), tv(p.CreatedAt), tv(p.LastUsedAt), accountID), scanPhone)
		return err
	})
	return out, err
}

// DeleteSMSPhone implements store.Queries: the phone and its outstanding
// code go together.
func (q *queries) DeleteSMSPhone(ctx context.Context, accountID string) error {
	return q.atomic(ctx, func(tx *queries) error {
		res, err := tx.w.ExecContext(ctx, `DELETE FROM sms_phones WHERE account_id = ?`, accountID)
		if err := mustAffect("delete sms phone", res, err); err != nil {
			return err
		}
		_, err = tx.w.ExecContext(ctx, `DELETE FROM sms_codes WHERE account_id = ?`, accountID)
		return mapErr("delete sms phone", err)
	})
}

const smsCodeCols = `account_id, purpose, number, code_hash, attempts, created_at, expires_at, used_at`

func scanSMSCode(sc scanner) (store.SMSCode, error) {
	var c store.SMSCode
	err := sc.Scan(&c.AccountID, &c.Purpose, &c.Number, bs{&c.CodeHash}, &c.Attempts,
		ts{&c.CreatedAt}, ts{&c.ExpiresAt}, ts{&c.UsedAt})
	return c, err
}

// PutSMSCode implements store.Queries: one statement inserts the code or
// overwrites the account's previous one.
func (q *queries) PutSMSCode(ctx context.Context, c store.SMSCode) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO sms_codes (`+smsCodeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
		c, err := one("update sms code", tx.w.QueryRowContext(ctx, `SELECT `+smsCodeCols+` FROM sms_codes WHERE account_id = ?`, accountID), scanSMSCode)
		if err != nil {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		if c.AccountID != accountID {
			return errIDChanged
		}
		out, err = one("update sms code", tx.w.QueryRowContext(ctx, `UPDATE sms_codes SET
			purpose = ?, number = ?, code_hash = ?, attempts = ?, created_at = ?, expires_at = ?, used_at = ?
			WHERE account_id = ? RETURNING `+smsCodeCols,
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

func scanKey(sc scanner) (store.WebAuthnCredential, error) {
	var k store.WebAuthnCredential
	err := sc.Scan(&k.ID, &k.AccountID, bs{&k.CredentialID}, &k.Name, bs{&k.PublicKey}, &k.AttestationType,
		&k.AttestationFormat, bs{&k.AAGUID}, &k.Transports, &k.SignCount, &k.UserVerified, &k.BackupEligible,
		&k.BackupState, &k.Attachment, &k.Discoverable, ts{&k.CreatedAt}, ts{&k.LastUsedAt})
	return k, err
}

// CreateWebAuthnCredential implements store.Queries.
func (q *queries) CreateWebAuthnCredential(ctx context.Context, k store.WebAuthnCredential) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO webauthn_credentials (`+keyCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.AccountID, nb(k.CredentialID), k.Name, nb(k.PublicKey), k.AttestationType, k.AttestationFormat,
		bv(k.AAGUID), k.Transports, k.SignCount, k.UserVerified, k.BackupEligible, k.BackupState, k.Attachment,
		k.Discoverable, tv(k.CreatedAt), tv(k.LastUsedAt))
	return mapErr("create webauthn credential", err)
}

// ListWebAuthnCredentials implements store.Queries.
func (q *queries) ListWebAuthnCredentials(ctx context.Context, accountID string) ([]store.WebAuthnCredential, error) {
	rows, err := q.r.QueryContext(ctx, `SELECT `+keyCols+` FROM webauthn_credentials
		WHERE account_id = ? ORDER BY created_at ASC NULLS FIRST, id`, accountID)
	return collect("list webauthn credentials", rows, err, scanKey)
}

// GetWebAuthnCredentialByCredentialID implements store.Queries.
func (q *queries) GetWebAuthnCredentialByCredentialID(ctx context.Context, credentialID []byte) (store.WebAuthnCredential, error) {
	return one("get webauthn credential", q.r.QueryRowContext(ctx, `SELECT `+keyCols+` FROM webauthn_credentials
		WHERE credential_id = ?`, credentialID), scanKey)
}

// UpdateWebAuthnCredential implements store.Queries. Changing CredentialID
// to one that is taken returns store.ErrAlreadyExists (SQLite undoes just
// the failed statement, so a caller's transaction stays usable).
func (q *queries) UpdateWebAuthnCredential(ctx context.Context, id string, fn func(k *store.WebAuthnCredential) error) (store.WebAuthnCredential, error) {
	var out store.WebAuthnCredential
	err := q.atomic(ctx, func(tx *queries) error {
		k, err := one("update webauthn credential", tx.w.QueryRowContext(ctx, `SELECT `+keyCols+` FROM webauthn_credentials WHERE id = ?`, id), scanKey)
		if err != nil {
			return err
		}
		if err := fn(&k); err != nil {
			return err
		}
		if k.ID != id {
			return errIDChanged
		}
		out, err = one("update webauthn credential", tx.w.QueryRowContext(ctx, `UPDATE webauthn_credentials SET
			account_id = ?, credential_id = ?, name = ?, public_key = ?, attestation_type = ?,
			attestation_format = ?, aaguid = ?, transports = ?, sign_count = ?, user_verified = ?,
			backup_eligible = ?, backup_state = ?, attachment = ?, discoverable = ?, created_at = ?,
			last_used_at = ?
			WHERE id = ? RETURNING `+keyCols,
			k.AccountID, nb(k.CredentialID), k.Name, nb(k.PublicKey), k.AttestationType,
			k.AttestationFormat, bv(k.AAGUID), k.Transports, k.SignCount, k.UserVerified,
			k.BackupEligible, k.BackupState, k.Attachment, k.Discoverable, tv(k.CreatedAt),
			tv(k.LastUsedAt), id), scanKey)
		return err
	})
	return out, err
}

// DeleteWebAuthnCredential implements store.Queries.
func (q *queries) DeleteWebAuthnCredential(ctx context.Context, accountID, id string) error {
	res, err := q.w.ExecContext(ctx, `DELETE FROM webauthn_credentials WHERE id = ? AND account_id = ?`, id, accountID)
	return mustAffect("delete webauthn credential", res, err)
}

// WebAuthn ceremonies.

const ceremonyCols = `id, account_id, kind, data, created_at, expires_at`

func scanCeremony(sc scanner) (store.WebAuthnCeremony, error) {
	var c store.WebAuthnCeremony
	err := sc.Scan(&c.ID, &c.AccountID, &c.Kind, bs{&c.Data}, ts{&c.CreatedAt}, ts{&c.ExpiresAt})
	return c, err
}

// CreateWebAuthnCeremony implements store.Queries.
func (q *queries) CreateWebAuthnCeremony(ctx context.Context, c store.WebAuthnCeremony) error {
	_, err := q.w.ExecContext(ctx, `INSERT INTO webauthn_ceremonies (`+ceremonyCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		c.ID, c.AccountID, c.Kind, nb(c.Data), tv(c.CreatedAt), tv(c.ExpiresAt))
	return mapErr("create webauthn ceremony", err)
}

// TakeWebAuthnCeremony implements store.Queries: DELETE ... RETURNING hands
// the row to exactly one caller.
func (q *queries) TakeWebAuthnCeremony(ctx context.Context, id string) (store.WebAuthnCeremony, error) {
	return one("take webauthn ceremony", q.w.QueryRowContext(ctx, `DELETE FROM webauthn_ceremonies
		WHERE id = ? RETURNING `+ceremonyCols, id), scanCeremony)
}

// DeleteExpiredWebAuthnCeremonies implements store.Queries.
func (q *queries) DeleteExpiredWebAuthnCeremonies(ctx context.Context, now time.Time) (int, error) {
	res, err := q.w.ExecContext(ctx, `DELETE FROM webauthn_ceremonies WHERE expires_at IS NULL OR expires_at < ?`, now.UnixMicro())
	if err != nil {
		return 0, mapErr("delete expired webauthn ceremonies", err)
	}
	n, err := res.RowsAffected()
	return int(n), mapErr("delete expired webauthn ceremonies", err)
}

// Settings.

const settingsCols = `account_id, signin, funding, trading, updated_at, factors_changed_at`

func scanSettings(sc scanner) (store.MFASettings, error) {
	var s store.MFASettings
	err := sc.Scan(&s.AccountID, &s.SignIn, &s.Funding, &s.Trading, ts{&s.UpdatedAt}, ts{&s.FactorsChangedAt})
	return s, err
}

// GetMFASettings implements store.Queries.
func (q *queries) GetMFASettings(ctx context.Context, accountID string) (store.MFASettings, error) {
	return one("get mfa settings", q.r.QueryRowContext(ctx, `SELECT `+settingsCols+` FROM mfa_settings WHERE account_id = ?`, accountID), scanSettings)
}

// UpdateMFASettings implements store.Queries. The write transaction is
// the per-account lock (SQLite has one writer); the zero row inserted for
// an account without settings is removed again if fn fails, so a failed
// update inside a caller's transaction leaves nothing behind.
func (q *queries) UpdateMFASettings(ctx context.Context, accountID string, fn func(s *store.MFASettings) error) (store.MFASettings, error) {
	var out store.MFASettings
	err := q.atomic(ctx, func(tx *queries) error {
		res, err := tx.w.ExecContext(ctx, `INSERT INTO mfa_settings (account_id) VALUES (?)
			ON CONFLICT (account_id) DO NOTHING`, accountID)
		if err != nil {
			return mapErr("update mfa settings", err)
		}
		created, err := res.RowsAffected()
		if err != nil {
			return mapErr("update mfa settings", err)
		}
		s, err := one("update mfa settings", tx.w.QueryRowContext(ctx, `SELECT `+settingsCols+` FROM mfa_settings WHERE account_id = ?`, accountID), scanSettings)
		if err != nil {
			return err
		}
		err = fn(&s)
		if err == nil && s.AccountID != accountID {
			err = errIDChanged
		}
		if err != nil {
			if created > 0 {
				if _, derr := tx.w.ExecContext(ctx, `DELETE FROM mfa_settings WHERE account_id = ?`, accountID); derr != nil {
					return mapErr("update mfa settings", derr)
				}
			}
			return err
		}
		out, err = one("update mfa settings", tx.w.QueryRowContext(ctx, `UPDATE mfa_settings SET
			signin = ?, funding = ?, trading = ?, updated_at = ?, factors_changed_at = ?
			WHERE account_id = ? RETURNING `+settingsCols,
			s.SignIn, s.Funding, s.Trading, tv(s.UpdatedAt), tv(s.FactorsChangedAt), accountID), scanSettings)
		return err
	})
	return out, err
}
