package httpx

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the HTTP metrics moat exports, registered on a registry the
// server owns (never the global one, so tests and several servers in one
// process do not collide).
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// routes caches each route's series (*routeSeries by route), so a
	// request does not hash its labels to find them: the routes are the
	// ServeMux patterns, a fixed set.
	routes sync.Map
}

// routeSeries are one route's series; a status class's counter is made on
// its first request, so /metrics lists only classes that happened.
type routeSeries struct {
	duration prometheus.Observer
	requests [len(statusClass)]atomic.Pointer[prometheus.Counter]
}

// NewMetrics registers moat_http_requests_total{route,code} and
// moat_http_request_duration_seconds{route} on reg. route is the ServeMux
// pattern that matched ("unmatched" when none did), so the label set stays
// bounded whatever paths clients send; code is the status class ("2xx").
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moat_http_requests_total",
			Help: "HTTP requests by route pattern and status class.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "moat_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var statusClass = [...]string{"1xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (m *Metrics) observe(route string, status int, d time.Duration) {
	rs, ok := m.routes.Load(route)
	if !ok {
		rs, _ = m.routes.LoadOrStore(route, &routeSeries{duration: m.duration.WithLabelValues(route)})
	}
	r := rs.(*routeSeries)
	i := status / 100
	if i < 0 || i >= len(statusClass) {
		i = 5
	}
	c := r.requests[i].Load()
	if c == nil {
		counter := m.requests.WithLabelValues(route, statusClass[i])
		c = &counter
		r.requests[i].Store(c)
	}
	(*c).Inc()
	r.duration.Observe(d.Seconds())
}

// requestState travels in the request context from Observe to the handlers.
type requestState struct {
	logger *slog.Logger
	ids    *idSource
	rec    recorder // in the same allocation as the state
	id     string   // error id, made on first use
}

type stateKey struct{}

func state(r *http.Request) *requestState {
	s, _ := r.Context().Value(stateKey{}).(*requestState)
	return s
}

// Logger returns the logger Observe put in the request context, or a
// logger that discards everything when the request did not pass Observe.
func Logger(r *http.Request) *slog.Logger {
	if s := state(r); s != nil {
		return s.logger
	}
	return discard
}

var discard = slog.New(slog.DiscardHandler)

// ErrorID returns the request's error id: a short random string, made on
// first use (only failing requests pay for it), logged with the error and
// shown to the user so support can find the log line.
func ErrorID(r *http.Request) string {
	s := state(r)
	if s == nil {
		return "-"
	}
	if s.id == "" {
		s.id = s.ids.next()
	}
	return s.id
}

// idSource reads error ids from an injected random source; the mutex makes
// any io.Reader safe to share between requests.
type idSource struct {
	mu   sync.Mutex
	rand io.Reader
}

func (s *idSource) next() string {
	var b [6]byte
	s.mu.Lock()
	_, err := io.ReadFull(s.rand, b[:])
	s.mu.Unlock()
	if err != nil {
		return "norandom"
	}
	return hex.EncodeToString(b[:])
}

// recorder remembers the status a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flush,
// deadlines).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps streaming responses working through the wrapper.
func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Observe is the outermost middleware: it puts the logger and the error-id
// source in the request context, then logs and measures every request.
//
// The log line has method, path (never the query string: it may hold a
// token), status, route and duration. Successful requests log at Debug, so
// the hot path (a session check) costs one Enabled call at the default
// level; 4xx log at Info and 5xx at Error. metrics may be nil.
//
// Observe reads the matched pattern from the request it passes on, so the
// middleware between it and the ServeMux must not replace the request
// (r.WithContext); the ones in this package do not.
func Observe(logger *slog.Logger, metrics *Metrics, rand io.Reader) func(http.Handler) http.Handler {
	ids := &idSource{rand: rand}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			st := &requestState{logger: logger, ids: ids, rec: recorder{ResponseWriter: w}}
			r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
			next.ServeHTTP(&st.rec, r)

			status := st.rec.status
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if metrics != nil {
				metrics.observe(route, status, elapsed)
			}
			level := slog.LevelDebug
			switch {
			case status >= 500:
				level = slog.LevelError
			case status >= 400:
				level = slog.LevelInfo
			}
			if !logger.Enabled(r.Context(), level) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.String("route", route),
				slog.Duration("duration", elapsed),
				slog.String("peer", r.RemoteAddr),
			}
			if st.id != "" {
				attrs = append(attrs, slog.String("error_id", st.id))
			}
			logger.LogAttrs(r.Context(), level, "request", attrs...)
		})
	}
}
