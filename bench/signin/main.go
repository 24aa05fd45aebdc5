// Command signin measures full password sign-ins through the JSON API
// (POST /api/v1/signin, correct password, known device) at 4 concurrent
// connections, against raw argon2id hashes per second with the same
// parameters and 4 goroutines on the same machine. A sign-in is one
// argon2id verification plus a few store writes, so the ratio says how much
// of a sign-in is anything but the password hash.
//
//	go run ./bench/signin [-duration 5s] [-conns 4]
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/moat-dev/moat/bench/internal/harness"
	"github.com/moat-dev/moat/bench/internal/load"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to measure each side")
	conns := flag.Int("conns", 4, "concurrent connections (and hashing goroutines)")
	flag.Parse()
	if err := run(*duration, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "signin:", err)
		os.Exit(1)
	}
}

const (
	email    = "bench@example.com"
	password = "violet-tractor-mango-cloud-91"
)

func run(duration time.Duration, conns int) error {
	var cfg config.Config
	m, err := harness.Start(func(c *config.Config) {
		// No device approval (nobody reads the e-mail), and throttling
		// limits far above what the benchmark does: every attempt here is
		// a success from 127.0.0.1, which a real deployment would slow.
		c.Security.DeviceApproval = false
		c.Security.IPLimit = 1 << 30
		cfg = *c
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := m.Server.Accounts().CreateConfirmedUser(context.Background(), email, password, store.RoleUser, "bench"); err != nil {
		return fmt.Errorf("create account: %w", err)
	}

	client := load.Client(conns)
	url := m.URL + "/api/v1/signin"
	// The first sign-in registers the device; later ones present its token,
	// as an app does, so each is a sign-in from a known device.
	deviceToken, err := signIn(context.Background(), client, url, "")
	if err != nil {
		return fmt.Errorf("first sign-in: %w", err)
	}
	op := func(ctx context.Context) error {
		_, err := signIn(ctx, client, url, deviceToken)
		return err
	}

	s := cfg.Security
	fmt.Printf("sign-in: %d connections, %v per side, argon2id m=%d KiB t=%d p=%d, GOMAXPROCS=%d\n",
		conns, duration, s.Argon2MemoryKiB, s.Argon2Time, s.Argon2Threads, runtime.GOMAXPROCS(0))
	load.Run(conns, duration/5, op)
	moat := load.Run(conns, duration, op)
	fmt.Printf("  moat POST /api/v1/signin: %s\n", moat)

	salt := make([]byte, 16)
	rand.Read(salt)
	raw := load.Run(conns, duration, func(context.Context) error {
		argon2.IDKey([]byte(password), salt, s.Argon2Time, s.Argon2MemoryKiB, s.Argon2Threads, 32)
		return nil
	})
	fmt.Printf("  raw argon2id hashes:      %s\n", raw)
	if raw.PerSecond() > 0 {
		fmt.Printf("  ratio moat/raw: %.2f\n", moat.PerSecond()/raw.PerSecond())
	}
	fmt.Printf("  peak RSS (process: server, client and hashing): %s\n", load.PeakRSS("self"))
	if moat.Failed > 0 {
		return fmt.Errorf("some sign-ins failed")
	}
	return nil
}

// signIn signs in through the API and returns the device token to keep.
func signIn(ctx context.Context, client *http.Client, url, deviceToken string) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": email, "password": password, "device_token": deviceToken})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Step         string `json:"step"`
		SessionToken string `json:"session_token"`
		DeviceToken  string `json:"device_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || out.Step != "done" || out.SessionToken == "" {
		return "", fmt.Errorf("status %d, step %q", resp.StatusCode, out.Step)
	}
	if out.DeviceToken != "" {
		deviceToken = out.DeviceToken
	}
	return deviceToken, nil
}
