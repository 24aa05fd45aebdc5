package web

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/moat-dev/moat/internal/secrets"
)

// Flash: a value one request hands to the next through the browser, for
// the Post/Redirect/Get of a page that must show something exactly once —
// backup codes after an enrolment, which the JavaScript security-key flow
// can only reach by following a redirect.
//
// Nothing is kept on the server (so any node can show the page): the value
// travels in a short-lived HttpOnly cookie, sealed with AES-GCM under a key
// derived from the master key and bound to the session it was made for,
// with its own expiry inside. The page that shows it clears the cookie.

// flashTTL bounds how long a flash waits for its page.
const flashTTL = 5 * time.Minute

// flashCookie is the cookie's name without the __Host- prefix.
const flashCookie = "moat_flash"

type flashValue struct {
	Kind    string    `json:"k"`
	Codes   []string  `json:"c,omitempty"`
	Until   time.Time `json:"u,omitzero"` // a password reset's hold
	Expires time.Time `json:"e"`
}

// newFlashBox makes the sealing box; without a configured key (tests, a
// single process) a random one serves this process only.
func newFlashBox(key []byte) (*secrets.Box, error) {
	if len(key) == 0 {
		key = make([]byte, secrets.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	return secrets.NewBox(key, rand.Reader)
}

func flashContext(sessionID string) string { return "web-flash:" + sessionID }

func (h *Handler) flashName() string {
	if h.secure {
		return "__Host-" + flashCookie
	}
	return flashCookie
}

// setFlash seals v for sessionID into the flash cookie.
func (h *Handler) setFlash(w http.ResponseWriter, sessionID string, v flashValue) error {
	v.Expires = h.clock.Now().Add(flashTTL)
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sealed, err := h.flash.Seal(b, flashContext(sessionID))
	if err != nil {
		return err
	}
	h.setCookie(w, h.flashName(), base64.RawURLEncoding.EncodeToString(sealed), flashTTL)
	return nil
}

// takeFlash opens and clears the flash cookie. It returns false when there
// is none, or it is for another session or kind, expired or tampered with.
func (h *Handler) takeFlash(w http.ResponseWriter, r *http.Request, sessionID, kind string) (flashValue, bool) {
	raw := cookieValue(r, h.flashName())
	if raw == "" {
		return flashValue{}, false
	}
	h.clearCookie(w, h.flashName())
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(sealed) > 4096 {
		return flashValue{}, false
	}
	b, err := h.flash.Open(sealed, flashContext(sessionID))
	if err != nil {
		return flashValue{}, false
	}
	var v flashValue
	if json.Unmarshal(b, &v) != nil || v.Kind != kind || !h.clock.Now().Before(v.Expires) {
		return flashValue{}, false
	}
	return v, true
}
