// Package apperr is moat's one application error type. Services return
// *Error values with a stable machine code and a message a person can act
// on; adapters map codes to HTTP statuses (internal/httpx), HTML messages and
// Kraken error strings, each in exactly one place. Anything that is not an
// *Error is internal: its details are logged for the operator and never shown.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, machine-readable error code. Clients may switch on it;
// never rename one.
type Code string

// The codes. Broad classes first, then specific reasons clients act on.
const (
	Internal      Code = "internal"     // a bug or an outage; details only in logs
	Invalid       Code = "invalid"      // malformed or unacceptable input
	NotFound      Code = "not_found"    // no such thing (or not yours)
	Conflict      Code = "conflict"     // the thing exists already / state changed
	Unauthorized  Code = "unauthorized" // not signed in, or session no longer valid
	Forbidden     Code = "forbidden"    // signed in but not allowed
	RateLimited   Code = "rate_limited" // slow down; see RetryAfter
	TooLarge      Code = "too_large"    // request body over the limit
	BadCredential Code = "invalid_credentials"
	Unconfirmed   Code = "email_unconfirmed"
	AccountLocked Code = "account_locked"
	WeakPassword  Code = "weak_password"
	TokenInvalid  Code = "token_invalid" // unknown, expired or already used link/code
	TokenExpired  Code = "token_expired"
	TokenUsed     Code = "token_used"
	StepUpNeeded  Code = "step_up_required"
)

// Error is an application error with a stable Code and a human Message.
type Error struct {
	Code    Code
	Message string
	// Field names the input field at fault, when there is one, so forms can
	// show the message next to it.
	Field string
	// RetryAfter is set with RateLimited and AccountLocked when known.
	RetryAfter time.Duration
	// Err is an underlying cause for logs; never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with the given code and message.
func New(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Errorf is New with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Field returns an Invalid-class error attached to a form field.
func Field(code Code, field, message string) *Error {
	return &Error{Code: code, Field: field, Message: message}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// CodeOf returns err's code: "" for nil, Internal for anything that is not an
// *Error.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if e, ok := As(err); ok {
		return e.Code
	}
	return Internal
}

// MessageOf returns the message safe to show a client. Internal errors get a
// generic text; their details belong in the operator's log only.
func MessageOf(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := As(err); ok && e.Code != Internal {
		return e.Message
	}
	return "Something went wrong on our side. Please try again in a moment."
}

// Wrap passes an *Error (or nil) through unchanged and turns any other
// error into an Internal one: the adapters log its cause under an error id
// and show a generic message, so driver and library details never reach a
// client.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := As(err); ok {
		return err
	}
	return &Error{Code: Internal, Message: "internal error", Err: err}
}
