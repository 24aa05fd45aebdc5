package server

import (
	"context"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/store"
)

// This file wires account recovery: the recovery service's settings from
// [recovery], the enrolment policy it shares with 2FA, and its timer.

// recoveryInterval is how often the recovery worker looks for reminders
// and completions due. The timers are stored, so a restart or another
// node picks them up; this only bounds how late one fires.
const recoveryInterval = time.Minute

// recoveryConfig is the recovery service's Config from [recovery].
func recoveryConfig(cfg config.Config) recovery.Config {
	return recovery.Config{
		WaitingPeriod: cfg.Recovery.WaitingPeriod,
		NoticeEvery:   cfg.Recovery.NoticeEvery,
		RecoveryHold:  cfg.Recovery.Hold,
	}
}

// enrolmentPolicies is the account service's EnrolmentPolicy: an account
// must enrol a second factor when any of the policies says so (mfa's
// mandatory 2FA for everyone or for staff, recovery's "the lost factors
// were removed"). A policy naming a method ("webauthn": staff need a
// security key) wins over one that accepts any.
//
// The order of construction needs it to be filled in late: the account
// service takes its enrolment policy when it is built, while the recovery
// service is built from the account service. New therefore builds the
// account service with this (holding mfa's policy), builds recovery, and
// then adds it here, before anything serves a request; nothing adds a
// policy after New returns, so the list needs no lock.
type enrolmentPolicies struct {
	list []account.EnrolmentPolicy
}

var _ account.EnrolmentPolicy = (*enrolmentPolicies)(nil)

// add appends p (nil is ignored). Call it only while New builds the
// server.
func (e *enrolmentPolicies) add(p account.EnrolmentPolicy) {
	if p != nil {
		e.list = append(e.list, p)
	}
}

// NeedsEnrolment implements account.EnrolmentPolicy. Any error refuses:
// the account service decides nothing without an answer.
func (e *enrolmentPolicies) NeedsEnrolment(ctx context.Context, acct store.Account) (bool, string, error) {
	must, method := false, ""
	for _, p := range e.list {
		m, how, err := p.NeedsEnrolment(ctx, acct)
		if err != nil {
			return false, "", err
		}
		if m {
			must = true
			if method == "" {
				method = how
			}
		}
	}
	return must, method, nil
}

// Recovery is the recovery service (tests call its Tick after moving the
// clock).
func (s *Server) Recovery() *recovery.Service { return s.recovery }

// runRecovery drives the recovery timers until ctx ends.
func (s *Server) runRecovery(ctx context.Context) { s.recovery.Run(ctx, recoveryInterval) }
