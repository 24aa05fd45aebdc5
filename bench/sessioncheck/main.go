// Command sessioncheck measures moat's hot path: the forward-auth session
// check (GET /auth/verify with a valid bearer session) at 32 concurrent
// keep-alive connections on loopback, against a bare net/http handler
// measured with the same client, and the moat server's peak RSS under that
// load.
//
//	go run ./bench/sessioncheck [-duration 1s] [-rounds 10] [-conns 32]
//
// moat runs as its own process, as in production: the real binary (built
// once with `go build ./cmd/moat`, not measured), an account made with
// `moat user create --password-stdin`, `moat serve` on a free port of
// 127.0.0.1 with a temporary data directory and MOAT_* settings, and the
// session got from the JSON sign-in API. Device approval is switched off
// (MOAT_SECURITY_DEVICE_APPROVAL=false) so no e-mailed code is needed; the
// session check does not depend on it. The bare handler is this program
// started again as a second server process; it answers with the same
// headers as moat (constant values) and has moat's HTTP timeouts, so the
// ratio is the cost of checking the session. The load generator is this
// process; both servers share the 2 cores with it alike.
//
// The two servers are measured in alternating rounds, so a change of load
// on a shared machine hits both, and the CPU time each process used per
// request is printed too: a figure a busy machine disturbs less. The peak
// RSS is the moat server process's VmHWM from /proc, reset after the setup
// (the sign-in's argon2id hash) so that it is the peak of the load; the
// setup's peak is printed beside it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/moat-dev/moat/bench/internal/harness"
	"github.com/moat-dev/moat/bench/internal/load"
)

func main() {
	harness.ServeBareIfAsked()
	duration := flag.Duration("duration", time.Second, "how long to measure each server in each round")
	rounds := flag.Int("rounds", 10, "alternating measurement rounds")
	conns := flag.Int("conns", 32, "concurrent keep-alive connections")
	flag.Parse()
	if err := run(*duration, *rounds, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "sessioncheck:", err)
		os.Exit(1)
	}
}

const (
	email    = "bench@example.com"
	password = "violet-tractor-mango-cloud-91"
)

func run(duration time.Duration, rounds, conns int) error {
	if rounds < 1 || conns < 1 || duration <= 0 {
		return fmt.Errorf("-rounds, -conns and -duration must be positive")
	}
	ctx := context.Background()
	m, err := harness.StartMoat(harness.Options{
		Env:   []string{"MOAT_SECURITY_DEVICE_APPROVAL=false"},
		Email: email, Password: password,
	})
	if err != nil {
		return err
	}
	defer m.Close()
	bare, err := harness.StartBare()
	if err != nil {
		return err
	}
	defer bare.Stop()

	client := load.Client(conns)
	token, _, err := m.SignIn(ctx, client, email, password, "")
	if err != nil {
		return err
	}
	auth := http.Header{"Authorization": {"Bearer " + token}}
	// A wrong token must be refused and the right one accepted, or the
	// numbers mean nothing.
	if err := load.Get(ctx, client, m.URL+"/auth/verify", http.Header{"Authorization": {"Bearer nope"}}, http.StatusUnauthorized); err != nil {
		return fmt.Errorf("check with a wrong token: %w", err)
	}
	if err := load.Get(ctx, client, m.URL+"/auth/verify", auth, http.StatusOK); err != nil {
		return fmt.Errorf("check with the session: %w", err)
	}
	// The sign-in above hashed a password (argon2id: 19 MiB). The peak
	// reported is that of the load, so it starts over here; the setup's
	// peak is printed beside it.
	setupPeak, err := m.Server().PeakRSS()
	if err != nil {
		return err
	}
	idle, _ := m.Server().RSS()
	if err := m.Server().ResetPeakRSS(); err != nil {
		return err
	}

	servers := []struct {
		name string
		url  string
		proc *harness.Process
	}{
		{"moat GET /auth/verify", m.URL + "/auth/verify", m.Server()},
		{"bare net/http handler", bare.Addr + "/", bare},
	}
	measure := func(url string, d time.Duration) load.Result {
		return load.Run(conns, d, func(ctx context.Context) error { return load.Get(ctx, client, url, auth, http.StatusOK) })
	}

	fmt.Printf("session check: %d keep-alive connections, %d rounds of %v per server, GOMAXPROCS=%d (client), load average %s\n",
		conns, rounds, duration, runtime.GOMAXPROCS(0), harness.LoadAverage())
	for _, s := range servers { // warm up: connections, caches
		measure(s.url, duration)
	}
	totals := make([]load.Result, len(servers))
	cpu := make([]time.Duration, len(servers))
	clientCPU := make([]time.Duration, len(servers))
	var ratios []float64
	for r := range rounds {
		var line string
		var perSec [2]float64
		for i, s := range servers {
			before, _ := s.proc.CPUTime()
			cbefore, _ := harness.CPUTimeOf(os.Getpid())
			res := measure(s.url, duration)
			after, _ := s.proc.CPUTime()
			cafter, _ := harness.CPUTimeOf(os.Getpid())
			cpu[i] += after - before
			clientCPU[i] += cafter - cbefore
			totals[i] = totals[i].Add(res)
			perSec[i] = res.PerSecond()
			line += fmt.Sprintf("  %s %.0f/s", s.name[:4], res.PerSecond())
		}
		ratios = append(ratios, perSec[0]/perSec[1])
		fmt.Printf("  round %d:%s  ratio %.2f\n", r+1, line, perSec[0]/perSec[1])
	}
	moat, plain := totals[0], totals[1]
	peak, err := m.Server().PeakRSS()
	if err != nil {
		return err
	}
	barePeak, _ := bare.PeakRSS()

	for i, s := range servers {
		fmt.Printf("  %s: %s; CPU per request: server %.1f µs, client %.1f µs\n",
			s.name, totals[i], perRequest(cpu[i], totals[i]), perRequest(clientCPU[i], totals[i]))
	}
	if plain.PerSecond() > 0 {
		fmt.Printf("  ratio moat/bare: %.2f over all rounds, median of the rounds %.2f (target >= 0.85)\n",
			moat.PerSecond()/plain.PerSecond(), load.Median(ratios))
	}
	fmt.Printf("  moat server peak RSS during the load: %s (target <= 64 MB); before it: %s, peak %s with the sign-in; bare server peak RSS: %s\n",
		peak, idle, setupPeak, barePeak)
	fmt.Printf("  load average after: %s\n", harness.LoadAverage())
	if moat.Failed > 0 || plain.Failed > 0 {
		return fmt.Errorf("some requests failed")
	}
	return nil
}

// perRequest is the server's CPU time per successful request, in µs: a
// figure a busy shared machine disturbs less than requests per second.
func perRequest(cpu time.Duration, r load.Result) float64 {
	if r.OK == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(r.OK)
}
