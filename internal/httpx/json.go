// Package httpx is the HTTP plumbing every moat adapter shares: the
// middleware stack (request logging and metrics, panic recovery, security
// headers, cross-origin protection, body limits), the client address behind
// trusted proxies, and the JSON helpers with the one table that maps
// apperr codes to HTTP statuses.
//
// It knows nothing about accounts or pages; adapters (internal/web,
// internal/api, …) call it, and internal/server wraps the whole mux in Stack.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
)

// statusOf is the one table from apperr codes to HTTP statuses. The HTML
// pages, the JSON API and the forward-auth endpoint all read it through
// Status.
var statusOf = map[apperr.Code]int{
	apperr.Invalid:       http.StatusBadRequest,
	apperr.WeakPassword:  http.StatusBadRequest,
	apperr.TokenInvalid:  http.StatusBadRequest, // a link or code the client sent; not an auth failure of the request
	apperr.TokenExpired:  http.StatusBadRequest,
	apperr.TokenUsed:     http.StatusBadRequest,
	apperr.BadCredential: http.StatusUnauthorized,
	apperr.Unauthorized:  http.StatusUnauthorized,
	apperr.Forbidden:     http.StatusForbidden,
	apperr.Unconfirmed:   http.StatusForbidden,
	apperr.StepUpNeeded:  http.StatusForbidden,
	apperr.NotFound:      http.StatusNotFound,
	apperr.Conflict:      http.StatusConflict,
	apperr.TooLarge:      http.StatusRequestEntityTooLarge,
	apperr.RateLimited:   http.StatusTooManyRequests,
	apperr.AccountLocked: http.StatusTooManyRequests,
	apperr.Internal:      http.StatusInternalServerError,
}

// Status returns the HTTP status for err: the table above for an
// *apperr.Error, 413 for a body over the limit (*http.MaxBytesError), 500
// for anything else. A code missing from the table is a client error the
// table has not learnt yet: 400, never 500.
func Status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return http.StatusRequestEntityTooLarge
	}
	e, ok := apperr.As(err)
	if !ok {
		return http.StatusInternalServerError
	}
	if s, ok := statusOf[e.Code]; ok {
		return s
	}
	return http.StatusBadRequest
}

// StatusClientClosedRequest is the status WriteError records when the
// client cancelled the request before moat answered (nginx's 499).
const StatusClientClosedRequest = 499

// errorBody is the JSON shape of every error response:
//
//	{"error":{"code":"invalid","message":"…","field":"email"}}
//
// ID is set for internal errors only: it is the error id in the operator's
// log, for the user to quote to support.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    apperr.Code `json:"code"`
	Message string      `json:"message"`
	Field   string      `json:"field,omitempty"`
	ID      string      `json:"id,omitempty"`
}

// normalize turns a body-size error into apperr.TooLarge so that clients
// see the stable code.
func normalize(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		if _, ok := apperr.As(err); !ok {
			return &apperr.Error{Code: apperr.TooLarge, Message: fmt.Sprintf("The request body is larger than the limit of %d bytes.", mb.Limit), Err: err}
		}
	}
	return err
}

// WriteError writes err as a JSON error response with the status from
// Status. Rate-limit and lock errors carry Retry-After. Internal errors
// (anything that is not an *apperr.Error) are logged with an error id,
// and the client gets a generic message and that id, never the details.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away mid-request: not a failure of moat, and
		// nobody reads this answer. 499 (as nginx logs it) keeps it out of
		// the 5xx alerts.
		Logger(r).LogAttrs(r.Context(), slog.LevelDebug, "client closed the request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path))
		WriteJSON(w, StatusClientClosedRequest, errorBody{Error: errorDetail{Code: apperr.Internal, Message: "The request was cancelled."}})
		return
	}
	err = normalize(err)
	status := Status(err)
	d := errorDetail{Code: apperr.CodeOf(err), Message: apperr.MessageOf(err)}
	if e, ok := apperr.As(err); ok {
		d.Field = e.Field
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", retryAfter(e.RetryAfter))
		}
		if _, known := statusOf[e.Code]; !known {
			Logger(r).LogAttrs(r.Context(), slog.LevelWarn, "apperr code has no HTTP status; add it to httpx's table",
				slog.String("code", string(e.Code)))
		}
	}
	if status >= 500 {
		d.Code = apperr.Internal
		d.ID = ErrorID(r)
		Logger(r).LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("error_id", d.ID),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Any("err", err))
	}
	WriteJSON(w, status, errorBody{Error: d})
}

// retryAfter formats d as whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// WriteJSON writes v as JSON with status. Responses are marked no-store:
// they describe accounts and must not sit in shared or browser caches.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// A value that cannot be marshalled is a bug in the caller.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"Something went wrong on our side. Please try again in a moment."}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte{'\n'})
}

// MaxJSONBytes bounds every body DecodeJSON reads, whatever the server-wide
// limit: API requests are small.
const MaxJSONBytes = 1 << 20

// DecodeJSON reads exactly one JSON object from the request body into dst,
// refusing unknown fields, trailing data, a body over MaxJSONBytes (or the
// server's limit) and a Content-Type other than application/json. Every
// failure is an *apperr.Error (Invalid, or TooLarge) whose message says what
// to fix; Field names the offending field when there is one.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	return DecodeJSONLimit(w, r, dst, MaxJSONBytes)
}

// DecodeJSONLimit is DecodeJSON with its own bound instead of MaxJSONBytes,
// for the few endpoints that take an upload inside the JSON (the server's
// limit for the path, Options.BodyLimits, must allow as much).
func DecodeJSONLimit(w http.ResponseWriter, r *http.Request, dst any, limit int64) error {
	if !isJSON(r.Header.Get("Content-Type")) {
		return apperr.New(apperr.Invalid, "Send the request body as JSON with the header Content-Type: application/json.")
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return normalize(err)
		}
		return apperr.New(apperr.Invalid, "The request body must hold exactly one JSON object and nothing after it.")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mb  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mb):
		return normalize(err)
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.Invalid, "The request body is empty; send a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.New(apperr.Invalid, "The request body is cut short: it is not complete JSON.")
	case errors.As(err, &syn):
		return apperr.Errorf(apperr.Invalid, "The request body is not valid JSON (error at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return apperr.Errorf(apperr.Invalid, "The request body must be a JSON object, not %s.", typ.Value)
		}
		return &apperr.Error{Code: apperr.Invalid, Field: typ.Field,
			Message: fmt.Sprintf("The field %q must be %s, not %s.", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &apperr.Error{Code: apperr.Invalid, Field: name, Message: fmt.Sprintf("The field %q is not part of this request.", name)}
	}
	return &apperr.Error{Code: apperr.Invalid, Message: "The request body could not be read as JSON.", Err: err}
}

func jsonKind(k string) string {
	switch {
	case k == "string":
		return "a string"
	case k == "bool":
		return "true or false"
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"), strings.HasPrefix(k, "float"):
		return "a number"
	case k == "slice" || k == "array":
		return "an array"
	}
	return "an object"
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}
