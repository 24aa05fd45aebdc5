package apikey

import (
	"errors"

	"github.com/moat-dev/moat/internal/apperr"
)

// KrakenError is an error string from Kraken's REST API. It is the one place
// the signed API's error vocabulary is spelled; clients (krakenex, ccxt,
// python-kraken-sdk) switch on these exact strings, so never reword one.
type KrakenError string

func (e KrakenError) Error() string { return string(e) }

// The errors the signed API answers with.
const (
	ErrInvalidKey       KrakenError = "EAPI:Invalid key"
	ErrInvalidSignature KrakenError = "EAPI:Invalid signature"
	ErrInvalidNonce     KrakenError = "EAPI:Invalid nonce"
	ErrBadRequest       KrakenError = "EAPI:Bad request"
	ErrRateLimit        KrakenError = "EAPI:Rate limit exceeded"
	ErrFeatureDisabled  KrakenError = "EAPI:Feature disabled"
	ErrPermission       KrakenError = "EGeneral:Permission denied"
	ErrInvalidArguments KrakenError = "EGeneral:Invalid arguments"
	ErrUnknownMethod    KrakenError = "EGeneral:Unknown method"
	ErrTemporaryLockout KrakenError = "EGeneral:Temporary lockout"
	ErrInternal         KrakenError = "EGeneral:Internal error"
	ErrUnavailable      KrakenError = "EService:Unavailable"
	ErrUnknownAssetPair KrakenError = "EQuery:Unknown asset pair"
	ErrUnknownOrder     KrakenError = "EOrder:Unknown order"
	ErrInsufficientFund KrakenError = "EOrder:Insufficient funds"
	ErrOrderMinimum     KrakenError = "EOrder:Order minimum not met"
)

// InvalidArgument is Kraken's "EGeneral:Invalid arguments:<field>".
func InvalidArgument(field string) KrakenError {
	return KrakenError(string(ErrInvalidArguments) + ":" + field)
}

// KrakenErrorOf maps any error to the Kraken string a client is shown:
// a KrakenError as is, an *apperr.Error by its code, anything else as
// "EGeneral:Internal error" (its details belong in the operator's log).
func KrakenErrorOf(err error) KrakenError {
	var ke KrakenError
	if errors.As(err, &ke) {
		return ke
	}
	switch apperr.CodeOf(err) {
	case apperr.Invalid, apperr.TooLarge, apperr.WeakPassword:
		if e, ok := apperr.As(err); ok && e.Field != "" {
			return InvalidArgument(e.Field)
		}
		return ErrInvalidArguments
	case apperr.Unauthorized, apperr.BadCredential, apperr.TokenInvalid, apperr.TokenExpired, apperr.TokenUsed:
		return ErrInvalidKey
	case apperr.Forbidden, apperr.AccountLocked, apperr.Unconfirmed, apperr.StepUpNeeded:
		return ErrPermission
	case apperr.RateLimited:
		return ErrRateLimit
	case apperr.NotFound, apperr.Conflict:
		return ErrInvalidArguments
	}
	return ErrInternal
}
