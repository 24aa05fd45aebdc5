package mfa

import (
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
)

// The errors people see. Each says what happened and what to do next.
// Codes are apperr's; Field is "code" for anything typed into the code box.

func errCodeFormat(what string) error {
	return apperr.Field(apperr.TokenInvalid, "code", "Enter the "+what+".")
}

func errWrongCode(method string) error {
	switch method {
	case MethodTOTP:
		return apperr.Field(apperr.TokenInvalid, "code",
			"That code is not right. Type the 6-digit code your authenticator app shows for this account now.")
	case MethodSMS:
		return apperr.Field(apperr.TokenInvalid, "code",
			"That code is not right. Check the latest text message we sent and type its 6-digit code.")
	default:
		return apperr.Field(apperr.TokenInvalid, "code",
			"That backup code is not right. Check it against your saved list; each code is 10 letters and digits.")
	}
}

var errTOTPReused = apperr.Field(apperr.TokenUsed, "code",
	"That code was already used \u2014 wait for the next one and type it.")

func errClockDrift(steps int64) error {
	dir := "behind"
	if steps > 0 {
		dir = "ahead"
	}
	if steps < 0 {
		steps = -steps
	}
	mins := (time.Duration(steps) * 30 * time.Second).Round(time.Minute) / time.Minute
	about := fmt.Sprintf("about %d minutes", mins)
	if mins <= 1 {
		about = "about a minute"
	}
	return apperr.Field(apperr.TokenInvalid, "code", fmt.Sprintf(
		"That code would be right if your phone's clock were correct: it seems to be %s %s. "+
			"Turn on automatic date and time in your phone's settings, then type the new code.", about, dir))
}

var errBackupUsed = apperr.Field(apperr.TokenUsed, "code",
	"That backup code was already used. Each code works once \u2014 use another code from your list.")

var errSMSExpired = apperr.Field(apperr.TokenExpired, "code",
	"That code has expired. Ask for a new text message and type the new code.")

var errSMSUsed = apperr.Field(apperr.TokenUsed, "code",
	"That code was already used. Ask for a new text message if you need another.")

var errSMSVoid = apperr.Field(apperr.TokenInvalid, "code",
	"Too many wrong tries for that code. Ask for a new text message.")

var errSMSNone = apperr.Field(apperr.TokenInvalid, "code",
	"There is no code waiting for you. Ask for a text message first.")

func errThrottled(retry time.Duration) error {
	e := apperr.New(apperr.RateLimited, fmt.Sprintf(
		"Too many codes tried. For your safety, wait %s before trying again.", humanDuration(retry)))
	e.RetryAfter = retry
	return e
}

func errSendLimit(retry time.Duration) error {
	e := apperr.New(apperr.RateLimited, fmt.Sprintf(
		"We have sent several text messages already. Wait %s before asking for another, or use another method.",
		humanDuration(retry)))
	e.RetryAfter = retry
	return e
}

var errStepUp = apperr.New(apperr.StepUpNeeded,
	"To make this change, first confirm it's you with your second factor.")

var errNotEnrolled = apperr.New(apperr.NotFound, "That method is not set up on your account.")

var errKeyFailed = apperr.New(apperr.Invalid,
	"Your security key's answer could not be checked. Try again, and make sure you use a key registered to this account.")

var errCeremonyGone = apperr.New(apperr.TokenExpired,
	"The security key request expired or was already used. Start again.")

var errSignCount = apperr.New(apperr.Forbidden,
	"This security key reported a problem that can mean it was copied, so we did not accept it. "+
		"Use another method, and remove this key if you no longer trust it.")

func humanDuration(d time.Duration) string {
	switch m := int((d + time.Minute - 1) / time.Minute); {
	case d < time.Minute:
		return "a minute"
	case m == 1:
		return "1 minute"
	default:
		return fmt.Sprintf("%d minutes", m)
	}
}
