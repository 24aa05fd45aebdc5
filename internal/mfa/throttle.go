package mfa

import (
	"context"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/store"
)

// Code throttling. Every code attempt (TOTP, SMS, backup) counts before it is
// checked: with the check first, a burst of parallel guesses would all see a
// count under the limit. A correct code clears the count. The limit is a
// pause, not a lock: only someone who already has the password (sign-in) or
// a session (step-up) reaches a code prompt, and the pause ends by itself.

func codeKey(accountID string) string { return "mfa:codes:" + accountID }

// attempt counts one code attempt and refuses it over the limit.
func (s *Service) attempt(ctx context.Context, accountID string) error {
	n, err := s.counter.Incr(ctx, codeKey(accountID), 1, s.cfg.CodeWindow)
	if err != nil {
		return apperr.Wrap(err)
	}
	if n > int64(s.cfg.CodeAttempts) {
		if n == int64(s.cfg.CodeAttempts)+1 {
			// Report the first refusal of the window, not every one.
			_ = s.record(ctx, s.store, Event{Type: EventCodesThrottled, AccountID: accountID,
				Data: map[string]any{"attempts": s.cfg.CodeAttempts}})
		}
		return errThrottled(retryAfter(s.clock.Now(), s.cfg.CodeWindow))
	}
	return nil
}

// succeeded clears the attempts after a correct code.
func (s *Service) succeeded(ctx context.Context, accountID string) {
	// A failure here only means the next attempts start from a higher
	// count; never fail a correct code for it.
	_ = s.counter.Reset(ctx, codeKey(accountID), s.cfg.CodeWindow)
}

// retryAfter is the time left in the fixed window of length w containing now
// (internal/ratelimit's windows: index now.UnixNano()/w).
func retryAfter(now time.Time, w time.Duration) time.Duration {
	left := w - time.Duration(now.UnixNano()%int64(w))
	if left <= 0 {
		left = w
	}
	return left
}

func (s *Service) record(ctx context.Context, q store.Queries, ev Event) error {
	return s.recorder.Record(ctx, q, ev)
}
