package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/moat-dev/moat/internal/apikey"
)

// NewReverseProxy returns an upstream that forwards verified calls to the
// exchange backend at target (its path is prefixed to /0/private/...). A
// backend that cannot be reached answers EService:Unavailable with HTTP 502.
func NewReverseProxy(target *url.URL, log *slog.Logger) *httputil.ReverseProxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.ErrorContext(r.Context(), "signed API: upstream", "err", err, "path", r.URL.Path)
			writeError(w, http.StatusBadGateway, apikey.ErrUnavailable)
		},
	}
}
