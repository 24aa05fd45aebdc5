// Command sessioncheck measures moat's hot path: the forward-auth session
// check (GET /auth/verify with a valid session) at 32 concurrent keep-alive
// connections, against a bare net/http handler on the same machine with the
// same client. The ratio says what moat's session check costs on top of
// Go's HTTP server.
//
//	go run ./bench/sessioncheck [-duration 5s] [-conns 32]
//
// Both servers run in this process on 127.0.0.1, with the load generator;
// the reported peak RSS is the whole process's.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/moat-dev/moat/bench/internal/harness"
	"github.com/moat-dev/moat/bench/internal/load"
	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to measure each server")
	conns := flag.Int("conns", 32, "concurrent keep-alive connections")
	flag.Parse()
	if err := run(*duration, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "sessioncheck:", err)
		os.Exit(1)
	}
}

const (
	email    = "bench@example.com"
	password = "violet-tractor-mango-cloud-91"
)

func run(duration time.Duration, conns int) error {
	ctx := context.Background()
	// Device approval is off so the benchmark can sign in without an
	// e-mailed code; the session check itself does not depend on it.
	m, err := harness.Start(func(c *config.Config) { c.Security.DeviceApproval = false })
	if err != nil {
		return err
	}
	defer m.Close()

	accounts := m.Server.Accounts()
	if _, err := accounts.CreateConfirmedUser(ctx, email, password, store.RoleUser, "bench"); err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	res, err := accounts.SignIn(ctx, email, password, account.Client{IP: "127.0.0.1", UserAgent: "moat-bench", Kind: "api"})
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if res.Step != account.StepDone {
		return fmt.Errorf("sign in stopped at step %q", res.Step)
	}
	auth := http.Header{"Authorization": {"Bearer " + res.Session.Token}}

	bare, stopBare, err := startBare()
	if err != nil {
		return err
	}
	defer stopBare()

	client := load.Client(conns)
	measure := func(url string, header http.Header) load.Result {
		op := func(ctx context.Context) error { return load.Get(ctx, client, url, header, http.StatusOK) }
		load.Run(conns, duration/5, op) // warm up: connections, caches
		return load.Run(conns, duration, op)
	}

	// A wrong token must be refused, or the numbers mean nothing.
	if err := load.Get(ctx, client, m.URL+"/auth/verify", http.Header{"Authorization": {"Bearer nope"}}, http.StatusUnauthorized); err != nil {
		return fmt.Errorf("unauthenticated check: %w", err)
	}

	fmt.Printf("session check: %d keep-alive connections, %v per server, GOMAXPROCS=%d\n", conns, duration, runtime.GOMAXPROCS(0))
	moat := measure(m.URL+"/auth/verify", auth)
	fmt.Printf("  moat GET /auth/verify: %s\n", moat)
	plain := measure(bare+"/", auth)
	fmt.Printf("  bare net/http handler: %s\n", plain)
	if plain.PerSecond() > 0 {
		fmt.Printf("  ratio moat/bare: %.2f\n", moat.PerSecond()/plain.PerSecond())
	}
	fmt.Printf("  peak RSS (process: both servers and the client): %s\n", load.PeakRSS("self"))
	if moat.Failed > 0 || plain.Failed > 0 {
		return fmt.Errorf("some requests failed")
	}
	return nil
}

// startBare serves the cheapest handler that answers like forward-auth
// does: 200 with an identity header.
func startBare() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Moat-Account-Id", "bench")
			w.WriteHeader(http.StatusOK)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}
