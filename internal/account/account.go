// Package account is the sign-up, sign-in, session and device service: the
// capability every other one stands on. Adapters (web pages, JSON API, CLI)
// call it and nothing underneath it.
//
// The sign-in flow is a small state machine held in a store.PendingSignIn:
//
//	password verified ──► [device approval] ──► [second factor] ──► session issued
//
// Each bracketed step is skipped when it does not apply: device approval
// when the device is approved or approval is off, the second factor when
// the account has none or its 2FA settings do not ask for one at sign-in
// (Deps.SignInPolicy). A passkey (SignInWithPasskey) enters the same
// machine with its second factor already verified, so it may still wait
// for device approval but is never asked for another factor.
//
// Second factors plug in through the Factor interface (internal/mfa adds
// TOTP, WebAuthn, SMS and backup codes); the flow itself does not change
// when a factor is added. internal/mfa imports this package, so this
// package states what it needs from it as small interfaces (twofactor.go).
package account

import (
	"context"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// Client is what the service knows about the requester. Adapters fill it
// from the request.
type Client struct {
	// IP is the client address as decided by the trusted-proxy setting.
	IP string
	// UserAgent as sent.
	UserAgent string
	// DeviceToken is the long-lived device cookie (web) or the app's device
	// token header (api); empty when the client has none yet.
	DeviceToken string
	// Kind is "web" or "api".
	Kind string
}

// Factor is a second factor that can complete a pending sign-in. The mfa
// package registers its factors with Service.RegisterFactor.
type Factor interface {
	// Name is the stable method name used by the API and forms: "webauthn",
	// "totp", "sms", "backup_code".
	Name() string
	// Enrolled reports whether the account has this factor set up.
	Enrolled(ctx context.Context, accountID string) (bool, error)
	// Verify checks response for the account; it must be atomic against
	// replay. It returns an *apperr.Error for a wrong/reused/expired answer.
	// For "webauthn" the response is the JSON the browser script posts
	// (mfa.KeyResponse: the ceremony ID from StartSecondFactor's challenge
	// and the assertion), so no state is kept here between the two calls.
	Verify(ctx context.Context, accountID, response string) error
}

// Step tells the adapter what to do next after a sign-in call.
type Step string

const (
	// StepDone: Session is set; sign-in is complete.
	StepDone Step = "done"
	// StepDeviceApproval: an e-mail with a code and a link went to the
	// owner; call ApproveDevice with PendingToken and the code.
	StepDeviceApproval Step = "device_approval"
	// StepSecondFactor: call VerifySecondFactor with PendingToken and one of
	// Factors.
	StepSecondFactor Step = "second_factor"
)

// SignInResult is the outcome of a sign-in step.
type SignInResult struct {
	Step Step
	// PendingToken identifies the pending sign-in (cookie or JSON field);
	// set unless Step is StepDone.
	PendingToken string
	// Factors lists the enrolled second factors in preference order
	// (StepSecondFactor only).
	Factors []string
	// Session is set when Step is StepDone.
	Session *IssuedSession
	// MustEnrol (StepDone only): the platform makes 2FA mandatory for this
	// account and it has no second factor yet (or, for staff, no security
	// key). The adapter sends the person to enrolment before anything
	// else. EnrolMethod is the method required, "" for any.
	MustEnrol   bool
	EnrolMethod string
	// SignInFactor (StepDone only) is the factor that completed the
	// sign-in, as the session records it (store.Session.SignInFactor):
	// "backup_code" tells the adapter to say how many codes are left and
	// to invite the person to set up a new method.
	SignInFactor string
}

// IssuedSession is a new session: the token is given to the client once and
// never stored.
type IssuedSession struct {
	Token string
	// DeviceToken is the (possibly new) device token the client must keep
	// (device cookie or app storage). Empty means the client's current
	// device token stays valid: keep it.
	DeviceToken string
	Session     store.Session
	// NewDevice is true when this sign-in came from a device the account had
	// not used before.
	NewDevice bool
}

// Principal is an authenticated request's identity.
type Principal struct {
	Account store.Account
	Session store.Session
}

// Activity is one entry of the recent-activity list.
type Activity struct {
	Time      time.Time
	Type      string // audit event type, e.g. "signin.success"
	IP        string
	Device    string // device name (browser/OS) or user agent summary
	DeviceID  string
	NewDevice bool
}

// DeviceView is a device as shown to its owner.
type DeviceView struct {
	store.Device
	Current bool
}

// SessionView is a session as shown to its owner.
type SessionView struct {
	store.Session
	DeviceName string
	Current    bool
}
