// Package webauthn is moat's relying party for security keys and passkeys
// (WebAuthn / FIDO2; U2F keys register through WebAuthn too), a thin layer
// over github.com/go-webauthn/webauthn that speaks moat's terms:
//
//   - Ceremony state is an opaque []byte the caller stores server-side
//     (internal/mfa keeps it in the store under a random id with an expiry);
//     nothing about a ceremony lives in this process, so any node can finish
//     what another began.
//   - Credentials are plain values (Credential) the caller persists; this
//     package converts them to and from the library's types.
//   - Challenges are read from the injected random source.
//   - Every error from client input wraps one of the sentinel errors below, so
//     callers map them to stable application errors without parsing text.
//
// The user handle of an account is its ID's bytes: random, stable, and free of
// personal data, so a discoverable (passkey) sign-in maps straight back to the
// account.
package webauthn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
	gowa "github.com/go-webauthn/webauthn/webauthn"
)

// Errors returned (wrapped) for input that fails. The wrapped detail is for
// logs only.
var (
	// ErrMalformed: the client's JSON is not a WebAuthn response.
	ErrMalformed = errors.New("webauthn: malformed response")
	// ErrVerify: the response does not verify (challenge, origin, RP ID,
	// signature, flags, user verification).
	ErrVerify = errors.New("webauthn: response does not verify")
	// ErrUnknownCredential: the credential used is not registered (for this
	// account).
	ErrUnknownCredential = errors.New("webauthn: unknown credential")
	// ErrSignCount: the authenticator's signature counter did not increase,
	// a sign that the key may have been cloned.
	ErrSignCount = errors.New("webauthn: signature counter did not increase")
	// ErrSession: the stored ceremony state is unusable (a bug or a
	// tampered store), or belongs to another kind of ceremony.
	ErrSession = errors.New("webauthn: bad ceremony state")
)

// Config is the relying party's identity.
type Config struct {
	// RPID is the registrable domain credentials are scoped to, e.g.
	// "example.com" (then any subdomain origin may use them).
	RPID string
	// RPDisplayName is shown by some authenticators ("moat").
	RPDisplayName string
	// Origins are the exact scheme://host[:port] values pages run at.
	Origins []string
}

// User is an account as WebAuthn sees it.
type User struct {
	// ID is the user handle (at most 64 bytes): the account ID's bytes.
	ID []byte
	// Name is the account's e-mail; DisplayName defaults to it.
	Name        string
	DisplayName string
	// Credentials are the account's registered credentials.
	Credentials []Credential
}

// Credential is a registered credential: what the caller stores.
type Credential struct {
	// ID is the credential ID the authenticator chose.
	ID []byte
	// PublicKey is the COSE_Key.
	PublicKey         []byte
	AttestationType   string
	AttestationFormat string
	AAGUID            []byte
	// Transports are hints for the browser: "usb", "nfc", "ble", "internal",
	// "hybrid".
	Transports []string
	SignCount  uint32
	// Flags as last seen.
	UserPresent    bool
	UserVerified   bool
	BackupEligible bool
	BackupState    bool
	// Attachment is "platform" or "cross-platform" when the browser said.
	Attachment string
	// Discoverable is true for a passkey: a resident credential that can
	// sign in without an e-mail address.
	Discoverable bool
}

// RP is a WebAuthn relying party.
type RP struct {
	w    *gowa.WebAuthn
	rand io.Reader
}

// New returns a relying party; rand supplies challenges.
func New(cfg Config, rand io.Reader) (*RP, error) {
	if cfg.RPID == "" || len(cfg.Origins) == 0 {
		return nil, errors.New("webauthn: RP ID and at least one origin are required")
	}
	if cfg.RPDisplayName == "" {
		cfg.RPDisplayName = cfg.RPID
	}
	w, err := gowa.New(&gowa.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPDisplayName,
		RPOrigins:     cfg.Origins,
		// Attestation "none": moat does not gate on authenticator models,
		// and asking for attestation makes browsers show an extra prompt.
		AttestationPreference: protocol.PreferNoAttestation,
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return &RP{w: w, rand: rand}, nil
}

// Options is what the browser passes to navigator.credentials.create or .get:
// JSON of the form {"publicKey": {...}} with binary values in base64url.
type Options = json.RawMessage

// ceremony is the stored state: the library's session data and what this
// package adds.
type ceremony struct {
	Kind    string           `json:"kind"`
	Passkey bool             `json:"passkey,omitempty"`
	Session gowa.SessionData `json:"session"`
}

const (
	kindRegister     = "register"
	kindLogin        = "login"
	kindDiscoverable = "discoverable"
)

// BeginRegistration starts registering a new credential for u. passkey asks
// for a discoverable credential with user verification (sign-in without a
// password); otherwise a security key as a second factor. u.Credentials are
// excluded so the same authenticator is not registered twice.
func (rp *RP) BeginRegistration(u User, passkey bool) (Options, []byte, error) {
	sel := protocol.AuthenticatorSelection{
		ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
		UserVerification: protocol.VerificationPreferred,
	}
	if passkey {
		t := true
		sel = protocol.AuthenticatorSelection{
			RequireResidentKey: &t,
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		}
	}
	challenge, err := rp.challenge()
	if err != nil {
		return nil, nil, err
	}
	creation, sess, err := rp.w.BeginRegistration(user{u},
		gowa.WithAuthenticatorSelection(sel),
		gowa.WithExclusions(descriptors(u.Credentials)),
		func(o *protocol.PublicKeyCredentialCreationOptions) error {
			o.Challenge = challenge
			// Ask the browser to report whether the credential is resident.
			o.Extensions.CredProps = true
			return nil
		})
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin registration: %w", err)
	}
	return marshal(creation, ceremony{Kind: kindRegister, Passkey: passkey, Session: *sess})
}

// FinishRegistration checks the browser's response to BeginRegistration and
// returns the new credential.
func (rp *RP) FinishRegistration(u User, state []byte, response []byte) (Credential, error) {
	c, err := unmarshal(state, kindRegister)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %v", ErrMalformed, detail(err))
	}
	cred, err := rp.w.CreateCredential(user{u}, c.Session, parsed)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %v", ErrVerify, detail(err))
	}
	for _, have := range u.Credentials {
		if bytes.Equal(have.ID, cred.ID) {
			return Credential{}, fmt.Errorf("%w: credential already registered", ErrVerify)
		}
	}
	out := fromLibrary(*cred)
	out.Discoverable = c.Passkey || (cred.Extensions.RK != nil && *cred.Extensions.RK)
	return out, nil
}

// BeginLogin starts an assertion by one of u's credentials (the second
// factor of a sign-in, or a step-up).
func (rp *RP) BeginLogin(u User) (Options, []byte, error) {
	if len(u.Credentials) == 0 {
		return nil, nil, fmt.Errorf("%w: the account has no credential", ErrUnknownCredential)
	}
	challenge, err := rp.challenge()
	if err != nil {
		return nil, nil, err
	}
	assertion, sess, err := rp.w.BeginLogin(user{u},
		gowa.WithChallenge(challenge),
		gowa.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin login: %w", err)
	}
	return marshal(assertion, ceremony{Kind: kindLogin, Session: *sess})
}

// FinishLogin checks the browser's response to BeginLogin. It returns the
// credential used with its new flags and the counter it presented. A counter
// that did not increase returns the credential (with that counter) and
// ErrSignCount: the caller refuses the sign-in and reports it.
func (rp *RP) FinishLogin(u User, state []byte, response []byte) (Credential, error) {
	c, err := unmarshal(state, kindLogin)
	if err != nil {
		return Credential{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Credential{}, fmt.Errorf("%w: %v", ErrMalformed, detail(err))
	}
	if find(u.Credentials, parsed.RawID) < 0 {
		return Credential{}, ErrUnknownCredential
	}
	cred, err := rp.w.ValidateLogin(user{u}, c.Session, parsed)
	if err != nil {
		return Credential{}, loginError(err)
	}
	return rp.used(u, *cred, parsed.Response.AuthenticatorData.Counter)
}

// BeginDiscoverableLogin starts a passwordless sign-in with a passkey: the
// browser offers whatever discoverable credential it has for the RP ID, with
// user verification required (the passkey stands for both factors).
func (rp *RP) BeginDiscoverableLogin() (Options, []byte, error) {
	challenge, err := rp.challenge()
	if err != nil {
		return nil, nil, err
	}
	assertion, sess, err := rp.w.BeginDiscoverableLogin(
		gowa.WithChallenge(challenge),
		gowa.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: begin discoverable login: %w", err)
	}
	return marshal(assertion, ceremony{Kind: kindDiscoverable, Session: *sess})
}

// LookupFunc finds the account of a user handle: the User with its
// credentials. It returns an error wrapping ErrUnknownCredential when there is
// none.
type LookupFunc func(userHandle []byte) (User, error)

// FinishDiscoverableLogin checks the response to BeginDiscoverableLogin and
// returns the account and the credential used (new counter and flags). The
// credential must be registered as discoverable, and user verification must
// have happened. ErrSignCount is returned as in FinishLogin.
func (rp *RP) FinishDiscoverableLogin(state []byte, response []byte, lookup LookupFunc) (User, Credential, error) {
	c, err := unmarshal(state, kindDiscoverable)
	if err != nil {
		return User{}, Credential{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return User{}, Credential{}, fmt.Errorf("%w: %v", ErrMalformed, detail(err))
	}
	if len(parsed.Response.UserHandle) == 0 {
		return User{}, Credential{}, fmt.Errorf("%w: no user handle (not a passkey)", ErrUnknownCredential)
	}
	u, err := lookup(parsed.Response.UserHandle)
	if err != nil {
		return User{}, Credential{}, err
	}
	i := find(u.Credentials, parsed.RawID)
	if i < 0 || !u.Credentials[i].Discoverable {
		return User{}, Credential{}, ErrUnknownCredential
	}
	_, cred, err := rp.w.ValidatePasskeyLogin(func(rawID, handle []byte) (gowa.User, error) {
		return user{u}, nil
	}, c.Session, parsed)
	if err != nil {
		return User{}, Credential{}, loginError(err)
	}
	used, err := rp.used(u, *cred, parsed.Response.AuthenticatorData.Counter)
	return u, used, err
}

// used converts the library's updated credential back, keeping what the
// library does not carry (Discoverable), with SignCount set to the counter
// the authenticator presented, and turns the library's clone warning into
// ErrSignCount.
func (rp *RP) used(u User, cred gowa.Credential, presented uint32) (Credential, error) {
	i := find(u.Credentials, cred.ID)
	if i < 0 {
		return Credential{}, ErrUnknownCredential
	}
	out := fromLibrary(cred)
	out.Discoverable = u.Credentials[i].Discoverable
	out.SignCount = presented
	if cred.Authenticator.CloneWarning {
		return out, ErrSignCount
	}
	return out, nil
}

// CounterAdvanced reports whether an assertion's counter got is acceptable
// after stored: it must increase, unless the authenticator keeps no counter
// (both zero, as passkeys synced between devices do). Callers repeat this
// check inside their atomic store update, where stored is current.
func CounterAdvanced(stored, got uint32) bool {
	return got > stored || (got == 0 && stored == 0)
}

func (rp *RP) challenge() (protocol.URLEncodedBase64, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rp.rand, b); err != nil {
		return nil, fmt.Errorf("webauthn: read random: %w", err)
	}
	return b, nil
}

func loginError(err error) error {
	var unknown *protocol.ErrorUnknownCredential
	if errors.As(err, &unknown) {
		return fmt.Errorf("%w: %v", ErrUnknownCredential, detail(err))
	}
	return fmt.Errorf("%w: %v", ErrVerify, detail(err))
}

// detail renders a library error with its developer info, for logs.
func detail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return pe.Details + " (" + pe.DevInfo + ")"
	}
	return err.Error()
}

func marshal(options any, c ceremony) (Options, []byte, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: encode options: %w", err)
	}
	s, err := json.Marshal(c)
	if err != nil {
		return nil, nil, fmt.Errorf("webauthn: encode session: %w", err)
	}
	return o, s, nil
}

func unmarshal(state []byte, kind string) (ceremony, error) {
	var c ceremony
	if err := json.Unmarshal(state, &c); err != nil {
		return ceremony{}, fmt.Errorf("%w: %v", ErrSession, err)
	}
	if c.Kind != kind {
		return ceremony{}, fmt.Errorf("%w: a %q ceremony finished as %q", ErrSession, c.Kind, kind)
	}
	return c, nil
}

func find(creds []Credential, id []byte) int {
	for i, c := range creds {
		if bytes.Equal(c.ID, id) {
			return i
		}
	}
	return -1
}

func descriptors(creds []Credential) []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, 0, len(creds))
	for _, c := range creds {
		lc := toLibrary(c)
		out = append(out, lc.Descriptor())
	}
	return out
}

// user adapts User to the library's interface.
type user struct{ u User }

func (u user) WebAuthnID() []byte   { return u.u.ID }
func (u user) WebAuthnName() string { return u.u.Name }
func (u user) WebAuthnDisplayName() string {
	if u.u.DisplayName != "" {
		return u.u.DisplayName
	}
	return u.u.Name
}
func (u user) WebAuthnCredentials() []gowa.Credential {
	out := make([]gowa.Credential, len(u.u.Credentials))
	for i, c := range u.u.Credentials {
		out[i] = toLibrary(c)
	}
	return out
}

func toLibrary(c Credential) gowa.Credential {
	ts := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		ts[i] = protocol.AuthenticatorTransport(t)
	}
	return gowa.Credential{
		ID:                c.ID,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transport:         ts,
		Flags: gowa.CredentialFlags{
			UserPresent: c.UserPresent, UserVerified: c.UserVerified,
			BackupEligible: c.BackupEligible, BackupState: c.BackupState,
		},
		Authenticator: gowa.Authenticator{
			AAGUID: c.AAGUID, SignCount: c.SignCount,
			Attachment: protocol.AuthenticatorAttachment(c.Attachment),
		},
	}
}

func fromLibrary(c gowa.Credential) Credential {
	ts := make([]string, 0, len(c.Transport))
	for _, t := range c.Transport {
		ts = append(ts, string(t))
	}
	return Credential{
		ID:                c.ID,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		AAGUID:            c.Authenticator.AAGUID,
		Transports:        ts,
		SignCount:         c.Authenticator.SignCount,
		UserPresent:       c.Flags.UserPresent,
		UserVerified:      c.Flags.UserVerified,
		BackupEligible:    c.Flags.BackupEligible,
		BackupState:       c.Flags.BackupState,
		Attachment:        string(c.Authenticator.Attachment),
	}
}

// EncodeID and DecodeID convert credential IDs for URLs and forms
// (unpadded base64url, as WebAuthn JSON uses).
func EncodeID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// DecodeID is the inverse of EncodeID.
func DecodeID(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
