// Package webauthntest is a software authenticator for tests: it answers
// the options moat sends to navigator.credentials.create and .get with the
// JSON a browser would post back, so registration and sign-in can be tested
// end to end without a browser. It signs with real ES256 keys and "none"
// attestation; tests can move its signature counter to attack the server.
//
// It is a test double: keys live in memory and nothing is protected.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator is a software FIDO2 authenticator bound to one origin.
type Authenticator struct {
	// Origin is what the "browser" reports in client data, e.g.
	// "http://localhost:8080".
	Origin string
	// UV: the authenticator verifies the user (PIN or biometrics). Default
	// true from New.
	UV bool
	// BackupEligible marks credentials as syncable (a passkey manager).
	BackupEligible bool
	// Attachment reported to the server: "cross-platform" or "platform".
	Attachment string

	mu    sync.Mutex
	creds []*Cred
}

// Cred is a credential the authenticator holds.
type Cred struct {
	ID         []byte
	RPID       string
	UserHandle []byte
	Resident   bool
	// Counter is the signature counter; each assertion adds one first.
	// Tests may set it (through SetCounter) to simulate a clone.
	Counter uint32
	key     *ecdsa.PrivateKey
}

// New returns an authenticator for origin that performs user verification.
func New(origin string) *Authenticator {
	return &Authenticator{Origin: origin, UV: true, Attachment: "cross-platform"}
}

// Creds returns the credentials held.
func (a *Authenticator) Creds() []Cred {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Cred, len(a.creds))
	for i, c := range a.creds {
		out[i] = *c
	}
	return out
}

// SetCounter sets the signature counter of the credential with id.
func (a *Authenticator) SetCounter(id []byte, n uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.creds {
		if string(c.ID) == string(id) {
			c.Counter = n
		}
	}
}

type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
		AuthenticatorSelection struct {
			ResidentKey        string `json:"residentKey"`
			RequireResidentKey bool   `json:"requireResidentKey"`
			UserVerification   string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		Extensions struct {
			CredProps bool `json:"credProps"`
		} `json:"extensions"`
	} `json:"publicKey"`
}

// ErrExcluded is returned by Create when the authenticator already holds an
// excluded credential (the browser reports InvalidStateError).
var ErrExcluded = errors.New("webauthntest: authenticator already registered")

// ErrNoCredential is returned by Get when no held credential is allowed.
var ErrNoCredential = errors.New("webauthntest: no matching credential")

// Create answers navigator.credentials.create(options) and returns the
// PublicKeyCredential JSON a browser posts (registration response).
func (a *Authenticator) Create(options []byte) ([]byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	pk := o.PublicKey
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ex := range pk.ExcludeCredentials {
		for _, c := range a.creds {
			if b64(c.ID) == ex.ID && c.RPID == pk.RP.ID {
				return nil, ErrExcluded
			}
		}
	}
	if pk.AuthenticatorSelection.UserVerification == "required" && !a.UV {
		return nil, errors.New("webauthntest: user verification required but not available")
	}
	handle, err := unb64(pk.User.ID)
	if err != nil {
		return nil, fmt.Errorf("webauthntest: user.id: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	resident := pk.AuthenticatorSelection.ResidentKey == "required" || pk.AuthenticatorSelection.RequireResidentKey ||
		pk.AuthenticatorSelection.ResidentKey == "preferred"
	c := &Cred{ID: id, RPID: pk.RP.ID, UserHandle: handle, Resident: resident, key: key}

	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pub[1:33], -3: pub[33:65]})
	if err != nil {
		return nil, err
	}
	att := make([]byte, 0, 16+2+len(id)+len(cose))
	att = append(att, make([]byte, 16)...) // AAGUID: zero, as for "none"
	att = binary.BigEndian.AppendUint16(att, uint16(len(id)))
	att = append(att, id...)
	att = append(att, cose...)
	authData := a.authData(pk.RP.ID, 0x40, c.Counter, att)

	clientData, err := json.Marshal(map[string]any{
		"type": "webauthn.create", "challenge": pk.Challenge, "origin": a.Origin, "crossOrigin": false,
	})
	if err != nil {
		return nil, err
	}
	attObj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		return nil, err
	}
	ext := map[string]any{}
	if pk.Extensions.CredProps {
		ext["credProps"] = map[string]bool{"rk": resident}
	}
	a.creds = append(a.creds, c)
	return json.Marshal(map[string]any{
		"id": b64(id), "rawId": b64(id), "type": "public-key",
		"authenticatorAttachment": a.Attachment,
		"response": map[string]any{
			"clientDataJSON":    b64(clientData),
			"attestationObject": b64(attObj),
			"transports":        []string{"usb"},
		},
		"clientExtensionResults": ext,
	})
}

type requestOptions struct {
	PublicKey struct {
		Challenge        string `json:"challenge"`
		RPID             string `json:"rpId"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
		UserVerification string `json:"userVerification"`
	} `json:"publicKey"`
}

// Get answers navigator.credentials.get(options) with the first allowed
// credential (or, without an allow list, the first resident one for the RP
// ID) and returns the assertion JSON a browser posts.
func (a *Authenticator) Get(options []byte) ([]byte, error) {
	return a.get(options, nil)
}

// GetWith is Get with a chosen credential (by ID), as when a person picks
// one of several keys.
func (a *Authenticator) GetWith(options []byte, id []byte) ([]byte, error) {
	return a.get(options, id)
}

func (a *Authenticator) get(options []byte, want []byte) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, err
	}
	pk := o.PublicKey
	a.mu.Lock()
	defer a.mu.Unlock()
	var c *Cred
	for _, h := range a.creds {
		if h.RPID != pk.RPID || (want != nil && string(h.ID) != string(want)) {
			continue
		}
		if len(pk.AllowCredentials) == 0 {
			if h.Resident {
				c = h
				break
			}
			continue
		}
		for _, al := range pk.AllowCredentials {
			if al.ID == b64(h.ID) {
				c = h
			}
		}
		if c != nil {
			break
		}
	}
	if c == nil {
		return nil, ErrNoCredential
	}
	if pk.UserVerification == "required" && !a.UV {
		return nil, errors.New("webauthntest: user verification required but not available")
	}
	c.Counter++
	authData := a.authData(pk.RPID, 0, c.Counter, nil)
	clientData, err := json.Marshal(map[string]any{
		"type": "webauthn.get", "challenge": pk.Challenge, "origin": a.Origin, "crossOrigin": false,
	})
	if err != nil {
		return nil, err
	}
	cdh := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, digest[:])
	if err != nil {
		return nil, err
	}
	resp := map[string]any{
		"clientDataJSON":    b64(clientData),
		"authenticatorData": b64(authData),
		"signature":         b64(sig),
	}
	if c.Resident {
		resp["userHandle"] = b64(c.UserHandle)
	}
	return json.Marshal(map[string]any{
		"id": b64(c.ID), "rawId": b64(c.ID), "type": "public-key",
		"authenticatorAttachment": a.Attachment,
		"response":                resp,
		"clientExtensionResults":  map[string]any{},
	})
}

// authData builds authenticator data: RP ID hash, flags (UP always, UV and
// BE as configured, plus extra), counter, and attested credential data.
func (a *Authenticator) authData(rpID string, extra byte, counter uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	flags := byte(0x01) | extra
	if a.UV {
		flags |= 0x04
	}
	if a.BackupEligible {
		flags |= 0x08
	}
	out := append([]byte(nil), h[:]...)
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, counter)
	return append(out, attested...)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
