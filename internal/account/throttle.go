package account

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
)

// Sign-in throttling has two layers.
//
// Per IP, every sign-in attempt counts ("ip:"+IP); past IPLimit in a
// window the IP waits for the next window. This bounds the password-hashing
// work any one address can make us do.
//
// Per account, failed attempts count ("acct:"+email, also for addresses
// without an account so the answers do not differ). The first
// ThrottleFreeAttempts failures are free; after n failures the next attempt
// must wait 2^(n-free) seconds (at most 5 minutes) from the last failure;
// LockAfter failures pause the account for LockFor and e-mail the owner
// once. Nothing here is permanent: every pause ends by itself. And a device
// the owner has signed in with and approved skips the account layer
// entirely, so a stranger hammering the address cannot keep the owner out.
//
// The counts live in the shared ratelimit.Counter, so every node sees them;
// the times (last failure, end of a pause) are kept per node, in memory.
// Counter windows are fixed, so the count of failures restarts when a
// window ends; the node that saw the pause begin still holds it for the
// whole LockFor. A node that did not see the last failure (another node, or
// after a restart) applies no delay, and holds a pause only until the
// counter's window ends: with the defaults (LockFor = ThrottleWindow) that
// still allows at most LockAfter guesses per window.

// throttle remembers, per address, when it last failed on this node and
// until when it is paused.
type throttle struct {
	mu        sync.Mutex
	m         map[string]throttleEntry
	lastSweep time.Time
}

type throttleEntry struct {
	last        time.Time
	pausedUntil time.Time
}

func newThrottle() *throttle { return &throttle{m: make(map[string]throttleEntry)} }

func (t *throttle) get(email string) (throttleEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[email]
	return e, ok
}

// failed records a failure at now (and a pause until pausedUntil, if not
// zero), and drops entries that no longer matter.
func (t *throttle) failed(email string, now, pausedUntil time.Time, keep time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[email]
	e.last = now
	if pausedUntil.After(e.pausedUntil) {
		e.pausedUntil = pausedUntil
	}
	t.m[email] = e
	if now.Sub(t.lastSweep) < time.Minute {
		return
	}
	t.lastSweep = now
	for k, v := range t.m {
		if now.Sub(v.last) > keep && !now.Before(v.pausedUntil) {
			delete(t.m, k)
		}
	}
}

func (t *throttle) forget(email string) {
	t.mu.Lock()
	delete(t.m, email)
	t.mu.Unlock()
}

// windowEnd is when the counter window containing now closes (windows are
// aligned to the Unix epoch, like the counters').
func windowEnd(now time.Time, w time.Duration) time.Time {
	return time.Unix(0, (now.UnixNano()/int64(w)+1)*int64(w)).UTC()
}

// checkIP counts a sign-in attempt from ip and refuses it past the limit.
func (s *Service) checkIP(ctx context.Context, ip string, now time.Time) error {
	return s.limitIP(ctx, "ip:", ip, now, "sign-in attempts")
}

// limitIP counts one request of a kind (its counter prefix) from ip and
// refuses it, naming what (plural) in the message, past IPLimit per
// throttle window. Requests without an address are not counted.
func (s *Service) limitIP(ctx context.Context, prefix, ip string, now time.Time, what string) error {
	if ip == "" {
		return nil
	}
	n, err := s.counter.Incr(ctx, prefix+ip, 1, s.cfg.ThrottleWindow)
	if err != nil {
		return apperr.Wrap(err)
	}
	if n <= int64(s.cfg.IPLimit) {
		return nil
	}
	wait := windowEnd(now, s.cfg.ThrottleWindow).Sub(now)
	return &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait,
		Message: fmt.Sprintf("Too many %s from your network. Try again in %s.", what, humanDuration(wait))}
}

// delayAfter is the wait after n failures: 2^(n-free) seconds, capped.
func (s *Service) delayAfter(n int64) time.Duration {
	k := n - int64(s.cfg.ThrottleFreeAttempts)
	if k <= 0 {
		return 0
	}
	if k > 20 {
		return maxDelay
	}
	return min(time.Duration(1<<k)*time.Second, maxDelay)
}

// checkAccount refuses an attempt on email while it must wait or is
// paused. It does not count anything.
func (s *Service) checkAccount(ctx context.Context, email string, now time.Time) error {
	n, err := s.counter.Count(ctx, "acct:"+email, s.cfg.ThrottleWindow)
	if err != nil {
		return apperr.Wrap(err)
	}
	local, known := s.throttle.get(email)
	until := local.pausedUntil
	if n >= int64(s.cfg.LockAfter) && !known {
		until = windowEnd(now, s.cfg.ThrottleWindow)
	}
	if now.Before(until) {
		wait := until.Sub(now)
		return &apperr.Error{Code: apperr.AccountLocked, RetryAfter: wait, Message: fmt.Sprintf(
			"Signing in to this account is paused for %s after too many failed attempts.",
			humanDuration(wait))}
	}
	last := local.last
	if d := s.delayAfter(n); d > 0 && known {
		if until := last.Add(d); now.Before(until) {
			wait := until.Sub(now)
			return &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait, Message: fmt.Sprintf(
				"Too many failed sign-in attempts. Wait %s, then try again.", humanDuration(wait))}
		}
	}
	return nil
}

// accountFailed counts a failed attempt on email and returns the count.
func (s *Service) accountFailed(ctx context.Context, email string, now time.Time) (int64, error) {
	n, err := s.counter.Incr(ctx, "acct:"+email, 1, s.cfg.ThrottleWindow)
	if err != nil {
		return 0, apperr.Wrap(err)
	}
	var pause time.Time
	if n >= int64(s.cfg.LockAfter) {
		pause = now.Add(s.cfg.LockFor)
	}
	s.throttle.failed(email, now, pause, maxDelay)
	return n, nil
}

// clearAccount forgets email's failures (after a success or an unlock).
func (s *Service) clearAccount(ctx context.Context, email string) error {
	s.throttle.forget(email)
	if err := s.counter.Reset(ctx, "acct:"+email, s.cfg.ThrottleWindow); err != nil {
		return apperr.Wrap(err)
	}
	return nil
}

// humanDuration rounds d up for a message: "12 seconds", "1 minute",
// "15 minutes".
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		n := int((d + time.Second - 1) / time.Second)
		if n <= 1 {
			return "1 second"
		}
		return fmt.Sprintf("%d seconds", n)
	}
	n := int((d + time.Minute - 1) / time.Minute)
	if n == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", n)
}
