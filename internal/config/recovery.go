package config

import "time"

// Recovery configures account recovery after a lost second factor
// (internal/recovery): how long an approved case waits before the lost
// factors are removed, how often the owner is reminded meanwhile, and how
// long withdrawals stay paused afterwards.
type Recovery struct {
	// WaitingPeriod runs from the second staff approval; the owner can
	// cancel until it ends (DESIGN.md: 72 h).
	WaitingPeriod time.Duration `toml:"waiting_period"`
	// NoticeEvery is how often the owner is e-mailed during the waiting
	// period, with a cancel link (24 h).
	NoticeEvery time.Duration `toml:"notice_every"`
	// Hold pauses withdrawals after a completed recovery (7 days).
	Hold time.Duration `toml:"hold"`
}

// DefaultRecovery is the [recovery] section of Default.
func DefaultRecovery() Recovery {
	return Recovery{
		WaitingPeriod: 72 * time.Hour,
		NoticeEvery:   24 * time.Hour,
		Hold:          7 * 24 * time.Hour,
	}
}

// Bounds of the recovery settings. The waiting period is what gives the
// real owner time to notice and cancel a recovery someone else opened, so
// it cannot be turned off, and a reminder must come at least once in it.
const (
	minRecoveryWaiting = time.Hour
	maxRecoveryWaiting = 30 * 24 * time.Hour
	minRecoveryNotice  = time.Hour
	maxRecoveryHold    = 90 * 24 * time.Hour
)

func (c Config) checkRecovery(ps *problems) {
	r := c.Recovery
	if r.WaitingPeriod < minRecoveryWaiting || r.WaitingPeriod > maxRecoveryWaiting {
		ps.add("recovery.waiting_period", "%v: must be between %v and %v (DESIGN.md: 72h); it is the owner's time to cancel", r.WaitingPeriod, minRecoveryWaiting, maxRecoveryWaiting)
	}
	if r.NoticeEvery < minRecoveryNotice || (r.WaitingPeriod >= minRecoveryWaiting && r.NoticeEvery > r.WaitingPeriod) {
		ps.add("recovery.notice_every", "%v: must be at least %v and at most recovery.waiting_period (%v), so the owner is reminded during it", r.NoticeEvery, minRecoveryNotice, r.WaitingPeriod)
	}
	if r.Hold <= 0 || r.Hold > maxRecoveryHold {
		ps.add("recovery.hold", "%v: must be a positive duration of at most %v (DESIGN.md: 168h)", r.Hold, maxRecoveryHold)
	}
}
