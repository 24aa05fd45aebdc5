package apikey

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// PathPrefix is where private methods live; the signed path is PathPrefix
// followed by the method name.
const PathPrefix = "/0/private/"

// Header names of Kraken's scheme.
const (
	HeaderKey  = "API-Key"
	HeaderSign = "API-Sign"
)

// Limits on what a request may carry before anything is looked up.
const (
	maxMethodLen    = 64
	maxPublicKeyLen = 128
	maxNonceDigits  = 20 // 18446744073709551615
	maxOTPLen       = 256
)

// Request is a signed private call, parsed but not yet verified.
type Request struct {
	// Method is the Kraken method name, e.g. "AddOrder".
	Method string
	// Path is the signed URI path, PathPrefix+Method.
	Path string
	// PublicKey is the API-Key header.
	PublicKey string
	// Sign is the decoded API-Sign header (SignatureSize bytes).
	Sign []byte
	// Nonce is the body's nonce; NonceText is how the client wrote it, which
	// is what it signed.
	Nonce     uint64
	NonceText string
	// OTP is the body's otp field (the key password); HasOTP tells an
	// empty otp from none.
	OTP    string
	HasOTP bool
	// JSON is true when the body is a JSON object rather than a form.
	JSON bool
	// Body is the raw body exactly as received and signed.
	Body []byte
}

// Verify reports whether the request is signed with secret.
func (r *Request) Verify(secret []byte) bool {
	return Verify(r.Path, r.NonceText, r.Body, secret, r.Sign)
}

// ParseRequest parses a private call from its URL path, headers and raw
// body. It is liberal where real clients differ (form or JSON body, the
// nonce as a JSON number or string, padded or unpadded base64 in API-Sign,
// a charset on the content type) and strict where a lax parser would let a
// request mean two things: a repeated nonce or otp, a malformed body, or a
// nonce that is not an unsigned 64-bit decimal are refused.
//
// Errors are KrakenErrors: ErrUnknownMethod, ErrInvalidKey,
// ErrInvalidSignature, ErrInvalidNonce or an EGeneral:Invalid arguments.
func ParseRequest(path string, h http.Header, body []byte) (Request, error) {
	method, ok := MethodFromPath(path)
	if !ok {
		return Request{}, ErrUnknownMethod
	}
	req := Request{Method: method, Path: path, Body: body}

	key, ok := singleHeader(h, HeaderKey)
	if !ok || !validPublicKey(key) {
		return Request{}, ErrInvalidKey
	}
	req.PublicKey = key

	sign, ok := singleHeader(h, HeaderSign)
	if !ok {
		return Request{}, ErrInvalidSignature
	}
	if req.Sign, ok = decodeSign(sign); !ok {
		return Request{}, ErrInvalidSignature
	}

	var err error
	if isJSON(h.Get("Content-Type"), body) {
		req.JSON = true
		err = scanJSON(body, &req)
	} else {
		err = scanForm(body, &req)
	}
	if err != nil {
		return Request{}, err
	}
	if req.NonceText == "" {
		return Request{}, ErrInvalidNonce
	}
	return req, nil
}

// MethodFromPath returns the method name of a private path
// ("/0/private/Balance" → "Balance"). Names are ASCII letters and digits,
// starting with a letter.
func MethodFromPath(path string) (string, bool) {
	m, ok := strings.CutPrefix(path, PathPrefix)
	if !ok || m == "" || len(m) > maxMethodLen {
		return "", false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		letter := (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return "", false
		}
	}
	return m, true
}

func singleHeader(h http.Header, name string) (string, bool) {
	v := h.Values(name)
	if len(v) != 1 {
		return "", false
	}
	s := strings.TrimSpace(v[0])
	return s, s != ""
}

// validPublicKey accepts what could be a key moat issued (base64 text) so
// that garbage never reaches the store.
func validPublicKey(s string) bool {
	if len(s) > maxPublicKeyLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			c == '+' || c == '/' || c == '=' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func decodeSign(s string) ([]byte, bool) {
	// 88 characters padded, 86 unpadded; anything much longer is not a
	// signature (and must not overrun buf).
	if len(s) > 96 {
		return nil, false
	}
	var buf [2 * SignatureSize]byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		n, err := enc.Decode(buf[:], []byte(s))
		if err == nil && n == SignatureSize {
			return append([]byte(nil), buf[:n]...), true
		}
	}
	return nil, false
}

// isJSON decides the body format: a JSON media type, or no content type at
// all and a body that starts like a JSON object.
func isJSON(contentType string, body []byte) bool {
	if contentType == "" {
		t := bytes.TrimLeft(body, " \t\r\n")
		return len(t) > 0 && t[0] == '{'
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// scanForm reads nonce and otp from an application/x-www-form-urlencoded
// body without building a map (this runs on every call).
func scanForm(body []byte, req *Request) error {
	s := string(body)
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, ok := unescape(k)
		if !ok {
			return ErrInvalidArguments
		}
		switch k {
		case "nonce":
			if req.NonceText != "" {
				return InvalidArgument("nonce")
			}
			v, ok := unescape(v)
			if !ok {
				return ErrInvalidNonce
			}
			if err := setNonce(req, v); err != nil {
				return err
			}
		case "otp":
			if req.HasOTP {
				return InvalidArgument("otp")
			}
			v, ok := unescape(v)
			if !ok || len(v) > maxOTPLen {
				return InvalidArgument("otp")
			}
			req.OTP, req.HasOTP = v, true
		}
	}
	return nil
}

func unescape(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}

func setNonce(req *Request, s string) error {
	if s == "" || len(s) > maxNonceDigits {
		return ErrInvalidNonce
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return ErrInvalidNonce
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return ErrInvalidNonce
	}
	req.Nonce, req.NonceText = n, s
	return nil
}

// scanJSON reads nonce and otp from a JSON object body. The nonce may be a
// JSON integer or a string of digits (python-kraken-sdk sends a string).
func scanJSON(body []byte, req *Request) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ErrInvalidArguments
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ErrInvalidArguments
		}
		k, ok := t.(string)
		if !ok {
			return ErrInvalidArguments
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return ErrInvalidArguments
		}
		switch k {
		case "nonce":
			if req.NonceText != "" {
				return InvalidArgument("nonce")
			}
			s := string(raw)
			if len(raw) > 0 && raw[0] == '"' {
				if json.Unmarshal(raw, &s) != nil {
					return ErrInvalidNonce
				}
			}
			if err := setNonce(req, s); err != nil {
				return err
			}
		case "otp":
			if req.HasOTP {
				return InvalidArgument("otp")
			}
			var v string
			if json.Unmarshal(raw, &v) != nil || len(v) > maxOTPLen {
				return InvalidArgument("otp")
			}
			req.OTP, req.HasOTP = v, true
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return ErrInvalidArguments
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrInvalidArguments
	}
	return nil
}
