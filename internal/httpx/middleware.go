package httpx

import (
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/moat-dev/moat/internal/apperr"
)

// Options configures Stack.
type Options struct {
	// Logger receives request logs and internal errors.
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Rand supplies error ids (crypto/rand.Reader in production).
	Rand io.Reader
	// PublicOrigin is the scheme://host[:port] users reach moat at: the
	// origin cross-origin protection trusts, and https there turns on HSTS.
	PublicOrigin string
	// MaxBodyBytes limits every request body, except on the paths
	// BodyLimits names.
	MaxBodyBytes int64
	// BodyLimits gives named routes their own body limit instead of
	// MaxBodyBytes, keyed by the exact request path (r.URL.Path, any
	// method): the few upload endpoints that need more, e.g.
	// {"/recovery/new": web.MaxRecoveryFormBytes}. A path not listed, or
	// listed with a limit <= 0, gets MaxBodyBytes.
	BodyLimits map[string]int64
}

// Stack wraps h (the ServeMux) in the middleware every request passes,
// outermost first:
//
//	Observe          logs and metrics; logger and error id in the context
//	Recover          a panic becomes a 500 with an error id
//	SecurityHeaders  CSP, nosniff, no-referrer, HSTS over https, …
//	CrossOrigin      refuses cross-site state-changing browser requests
//	MaxBytes         caps the request body (BodyLimits per path)
func Stack(h http.Handler, o Options) (http.Handler, error) {
	if o.Logger == nil || o.Rand == nil {
		return nil, fmt.Errorf("httpx: Stack needs a Logger and a Rand")
	}
	u, err := url.Parse(o.PublicOrigin)
	if err != nil {
		return nil, fmt.Errorf("httpx: public origin: %w", err)
	}
	csrf, err := CrossOrigin(o.PublicOrigin)
	if err != nil {
		return nil, err
	}
	h = MaxBytesByPath(o.MaxBodyBytes, o.BodyLimits)(h)
	h = csrf(h)
	h = SecurityHeaders(u.Scheme == "https")(h)
	h = Recover(h)
	h = Observe(o.Logger, o.Metrics, o.Rand)(h)
	return h, nil
}

// Content-Security-Policy for every response. Scripts and styles come only
// from moat itself (no inline code, so an injected <script> does not run);
// images may be data: URLs (the TOTP QR code); nobody may frame moat
// (clickjacking) and forms post only to moat.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// permissionsPolicy turns off powerful features moat never uses. WebAuthn
// (publickey-credentials-*) keeps its default of same-origin.
const permissionsPolicy = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), browsing-topics=()"

// hstsValue: two years. No includeSubDomains: moat does not own its sibling
// subdomains and must not force HTTPS on them.
const hstsValue = "max-age=63072000"

// SecurityHeaders sets the headers every response carries, HTML or not:
// the CSP above, X-Content-Type-Options: nosniff, Referrer-Policy:
// no-referrer (URLs with tokens in them never leak to another site),
// Cross-Origin-Opener-Policy: same-origin, a minimal Permissions-Policy,
// X-Frame-Options: DENY for old browsers, and Strict-Transport-Security when
// the request came over TLS or httpsOrigin says moat is reached over https
// (TLS ending at a proxy in front).
func SecurityHeaders(httpsOrigin bool) func(http.Handler) http.Handler {
	// The values are built once and shared by every response: these
	// headers are on the hot path of every request, and assigning a
	// prepared slice costs no allocation. Sharing is safe because Header
	// methods replace or append (the slices are full, so an append copies)
	// and never write into an existing slice.
	fixed := []struct {
		key string
		val []string
	}{
		{"Content-Security-Policy", []string{contentSecurityPolicy}},
		{"X-Content-Type-Options", []string{"nosniff"}},
		{"Referrer-Policy", []string{"no-referrer"}},
		{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
		{"Permissions-Policy", []string{permissionsPolicy}},
		{"X-Frame-Options", []string{"DENY"}},
	}
	hsts := []string{hstsValue}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			for _, f := range fixed {
				h[f.key] = f.val
			}
			if httpsOrigin || r.TLS != nil {
				h["Strict-Transport-Security"] = hsts
			}
			next.ServeHTTP(w, r)
		})
	}
}

// browserOnlyHeaders are the headers SecurityHeaders sets that only a
// browser acts on, when it renders or loads the response.
var browserOnlyHeaders = [...]string{
	"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
	"Cross-Origin-Opener-Policy", "Permissions-Policy", "X-Frame-Options",
	"Strict-Transport-Security",
}

// DropBrowserHeaders removes what SecurityHeaders set from a response that
// no browser receives, before it is written: a forward-auth answer that the
// reverse proxy consumes (nginx auth_request never passes it on; Traefik and
// Envoy pass on only the headers they are told to copy). Those seven
// headers are most of such an answer, and the proxy parses each of them on
// every request it forwards. Never call it for a response that may reach a
// browser, including error responses a proxy forwards.
func DropBrowserHeaders(h http.Header) {
	for _, k := range browserOnlyHeaders {
		delete(h, k)
	}
}

// CrossOrigin refuses cross-site requests with unsafe methods (POST, PUT,
// PATCH, DELETE) using http.CrossOriginProtection, with publicOrigin
// trusted (it differs from the Host header behind a reverse proxy).
//
// What it relies on, and what covers the rest:
//   - Browsers send Sec-Fetch-Site (all since 2023) or at least Origin on
//     unsafe requests; the check compares those. Requests with neither are
//     taken to be non-browser clients (bots, curl) and pass: they carry no
//     ambient cookies an attacker could ride on.
//   - Safe methods are never checked, so GET/HEAD must not change state.
//   - Cookies are SameSite=Lax (internal/web), a second, independent wall
//     for very old browsers.
//   - The JSON API also requires Content-Type: application/json on unsafe
//     requests (RequireJSON, DecodeJSON): an HTML form cannot send that
//     without a CORS preflight, which moat never grants.
//
// Refused requests get 403 with code forbidden.
func CrossOrigin(publicOrigin string) (func(http.Handler) http.Handler, error) {
	cop := http.NewCrossOriginProtection()
	if publicOrigin != "" {
		if err := cop.AddTrustedOrigin(strings.TrimSuffix(publicOrigin, "/")); err != nil {
			return nil, fmt.Errorf("httpx: trusted origin: %w", err)
		}
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, apperr.New(apperr.Forbidden,
			"This request came from another website and was refused. If you were using moat, reload the page and try again."))
	}))
	return cop.Handler, nil
}

// RequireJSON refuses unsafe requests (anything but GET, HEAD, OPTIONS)
// whose Content-Type is not application/json, with 400 invalid — even
// bodiless ones: HTML forms can only send form encodings, so this makes a
// cross-site form post to the API impossible whatever the browser.
func RequireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if !isJSON(r.Header.Get("Content-Type")) {
				WriteError(w, r, apperr.New(apperr.Invalid,
					"Send the request with the header Content-Type: application/json."))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// MaxBytes caps request bodies at limit bytes. A declared Content-Length
// over the limit is refused at once with 413 too_large (a short HTML page
// for a browser navigating, JSON otherwise); a body that turns out longer
// fails the handler's read with *http.MaxBytesError, which WriteError and
// Status map to 413 too_large as well.
func MaxBytes(limit int64) func(http.Handler) http.Handler {
	return MaxBytesByPath(limit, nil)
}

// MaxBytesByPath is MaxBytes with the limit of a request chosen by its
// exact path: byPath[r.URL.Path] when that is positive, else limit. The
// map is copied, so the caller may change its own afterwards.
func MaxBytesByPath(limit int64, byPath map[string]int64) func(http.Handler) http.Handler {
	limits := make(map[string]int64, len(byPath))
	for p, n := range byPath {
		if n > 0 {
			limits[p] = n
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			max := limit
			if n, ok := limits[r.URL.Path]; ok {
				max = n
			}
			if r.ContentLength > max {
				if wantsHTML(r) {
					writeTooLargePage(w, max)
					return
				}
				WriteError(w, r, &http.MaxBytesError{Limit: max})
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}

var tooLargePage = template.Must(template.New("too-large").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Too large</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/moat.css"></head>
<body><main class="narrow"><h1>What you sent is too large</h1>
<p>Nothing was saved. This page accepts at most {{.}}. Go back, choose a smaller file or shorten what you typed, and try again.</p>
<p><a href="/">Back to the start page</a></p></main></body></html>
`))

// writeTooLargePage answers a browser whose declared body is over limit.
func writeTooLargePage(w http.ResponseWriter, limit int64) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	tooLargePage.Execute(w, byteSize(limit))
}

// byteSize says n bytes the way people read sizes: "10 MB", "16 KB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.3g MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.3g KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Recover turns a panic in a handler into a 500: the panic value and stack
// go to the log under an error id; the client gets a generic message and
// the id only. http.ErrAbortHandler is re-raised (it is how a handler
// deliberately aborts a response).
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			id := ErrorID(r)
			Logger(r).LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("error_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())))
			if s := state(r); s != nil && s.rec.status != 0 {
				return // the response has started; nothing sane to add
			}
			if wantsHTML(r) {
				writeErrorPage(w, id)
				return
			}
			WriteError(w, r, &apperr.Error{Code: apperr.Internal, Message: "panic"})
		}()
		next.ServeHTTP(w, r)
	})
}

// wantsHTML reports whether the client is a browser navigating (it lists
// text/html in Accept), as opposed to an API client.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Something went wrong</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/moat.css"></head>
<body><main class="narrow"><h1>Something went wrong on our side</h1>
<p>Nothing was changed by the failed request. Please go back and try again in a moment.</p>
<p>If it keeps happening, contact support and quote error id <code>{{.}}</code>.</p>
<p><a href="/">Back to the start page</a></p></main></body></html>
`))

func writeErrorPage(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusInternalServerError)
	errorPage.Execute(w, id)
}
