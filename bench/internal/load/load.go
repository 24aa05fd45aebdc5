// Package load is the small load generator the moat benchmarks share:
// a fixed number of keep-alive connections issuing requests back to back
// for a fixed time, on loopback only.
package load

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Client returns an HTTP client that keeps up to conns connections open to
// one host and never opens more.
func Client(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
		Timeout: 30 * time.Second,
	}
}

// Result is one measurement.
type Result struct {
	OK       int64
	Failed   int64
	Duration time.Duration
	// FirstError is the first failure, for the report.
	FirstError error
}

// PerSecond is successful operations per second.
func (r Result) PerSecond() float64 { return float64(r.OK) / r.Duration.Seconds() }

// Add sums two measurements (of the same kind, taken one after the other).
func (r Result) Add(o Result) Result {
	first := r.FirstError
	if first == nil {
		first = o.FirstError
	}
	return Result{OK: r.OK + o.OK, Failed: r.Failed + o.Failed, Duration: r.Duration + o.Duration, FirstError: first}
}

func (r Result) String() string {
	s := fmt.Sprintf("%.0f/s (%d in %.1fs)", r.PerSecond(), r.OK, r.Duration.Seconds())
	if r.Failed > 0 {
		s += fmt.Sprintf(", %d FAILED (first: %v)", r.Failed, r.FirstError)
	}
	return s
}

// Run calls op from workers goroutines back to back until d has passed,
// and counts successes. Operations in flight at the deadline are finished,
// not cancelled (a cancelled request would count as neither, and would make
// the server log a failure); the elapsed time includes them.
func Run(workers int, d time.Duration, op func(ctx context.Context) error) Result {
	ctx := context.Background()
	var ok, failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := op(ctx); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return Result{OK: ok.Load(), Failed: failed.Load(), Duration: time.Since(start), FirstError: firstErr}
}

// Get sends GET url with header (may be nil) on client and checks the
// status; the body is read to the end so the connection is reused.
func Get(ctx context.Context, client *http.Client, url string, header http.Header, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if header != nil {
		req.Header = header
	}
	return Do(client, req, want)
}

// Do sends req and checks the status, draining the body.
func Do(client *http.Client, req *http.Request, want int) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	return nil
}

// Median is the middle value of xs (the mean of the two middle ones for an
// even count); 0 for none. Per-round ratios on a shared machine have
// outliers, which the median ignores.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
