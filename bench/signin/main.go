// Command signin measures full password sign-ins through the JSON API
// (POST /api/v1/signin, correct password, known device) at 4 concurrent
// connections, against raw argon2id hashes per second with the same
// parameters and the same parallelism (4 goroutines) on the same machine.
// A sign-in is one argon2id verification plus a few reads and one write
// transaction, so the ratio says how much of a sign-in is anything but the
// password hash.
//
//	go run ./bench/signin [-duration 2s] [-rounds 8] [-conns 4]
//
// moat runs as its own process (the real binary, built once and not
// measured, set up with `moat user create --password-stdin` and run as
// `moat serve` on 127.0.0.1 with a temporary data directory). Its argon2id
// parameters are the defaults, passed explicitly as MOAT_SECURITY_ARGON2_*
// so the raw baseline provably uses the same. Device approval is off
// (nobody reads the e-mail) and the per-IP limit is far above what the
// benchmark does: every attempt comes from 127.0.0.1, which a real
// deployment would slow down.
//
// The raw hashes run in this process while the server is idle, with the
// same GOMAXPROCS; sign-ins and raw hashes are measured in alternating
// rounds, so a change of load on a shared machine hits both.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/moat-dev/moat/bench/internal/harness"
	"github.com/moat-dev/moat/bench/internal/load"
	"github.com/moat-dev/moat/internal/config"
)

func main() {
	duration := flag.Duration("duration", 2*time.Second, "how long to measure each side in each round")
	rounds := flag.Int("rounds", 8, "alternating measurement rounds")
	conns := flag.Int("conns", 4, "concurrent connections (and hashing goroutines)")
	flag.Parse()
	if err := run(*duration, *rounds, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "signin:", err)
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
	s := config.Default().Security
	m, err := harness.StartMoat(harness.Options{
		Env: []string{
			"MOAT_SECURITY_DEVICE_APPROVAL=false",
			"MOAT_SECURITY_IP_LIMIT=1000000000",
			fmt.Sprint("MOAT_SECURITY_ARGON2_MEMORY_KIB=", s.Argon2MemoryKiB),
			fmt.Sprint("MOAT_SECURITY_ARGON2_TIME=", s.Argon2Time),
			fmt.Sprint("MOAT_SECURITY_ARGON2_THREADS=", s.Argon2Threads),
		},
		Email: email, Password: password,
	})
	if err != nil {
		return err
	}
	defer m.Close()

	ctx := context.Background()
	client := load.Client(conns)
	// The first sign-in registers the device; later ones present its token,
	// as an app does, so each is a sign-in from a known device.
	_, deviceToken, err := m.SignIn(ctx, client, email, password, "")
	if err != nil {
		return fmt.Errorf("first sign-in: %w", err)
	}
	signIn := func(ctx context.Context) error {
		_, _, err := m.SignIn(ctx, client, email, password, deviceToken)
		return err
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	hash := func(context.Context) error {
		argon2.IDKey([]byte(password), salt, s.Argon2Time, s.Argon2MemoryKiB, s.Argon2Threads, 32)
		return nil
	}

	fmt.Printf("sign-in: %d connections, %d rounds of %v per side, argon2id m=%d KiB t=%d p=%d, GOMAXPROCS=%d, load average %s\n",
		conns, rounds, duration, s.Argon2MemoryKiB, s.Argon2Time, s.Argon2Threads, runtime.GOMAXPROCS(0), harness.LoadAverage())
	load.Run(conns, duration/4, signIn) // warm up
	load.Run(conns, duration/4, hash)
	var moat, raw load.Result
	var serverCPU, hashCPU time.Duration
	var ratios []float64
	for r := range rounds {
		s0, _ := m.Server().CPUTime()
		a := load.Run(conns, duration, signIn)
		s1, _ := m.Server().CPUTime()
		h0, _ := harness.CPUTimeOf(os.Getpid())
		b := load.Run(conns, duration, hash)
		h1, _ := harness.CPUTimeOf(os.Getpid())
		serverCPU += s1 - s0
		hashCPU += h1 - h0
		moat, raw = moat.Add(a), raw.Add(b)
		ratios = append(ratios, a.PerSecond()/b.PerSecond())
		fmt.Printf("  round %d: moat %.1f/s  raw %.1f/s  ratio %.2f\n", r+1, a.PerSecond(), b.PerSecond(), a.PerSecond()/b.PerSecond())
	}
	fmt.Printf("  moat POST /api/v1/signin: %s; server CPU %.1f ms per sign-in\n", moat, perOp(serverCPU, moat))
	fmt.Printf("  raw argon2id hashes:      %s; CPU %.1f ms per hash\n", raw, perOp(hashCPU, raw))
	if raw.PerSecond() > 0 {
		fmt.Printf("  ratio moat/raw: %.2f over all rounds, median of the rounds %.2f (target >= 0.90)\n",
			moat.PerSecond()/raw.PerSecond(), load.Median(ratios))
	}
	if peak, err := m.Server().PeakRSS(); err == nil {
		fmt.Printf("  moat server peak RSS: %s\n", peak)
	}
	fmt.Printf("  load average after: %s\n", harness.LoadAverage())
	if moat.Failed > 0 {
		return fmt.Errorf("some sign-ins failed")
	}
	return nil
}

// perOp is CPU time per successful operation in ms: what a busy shared
// machine disturbs less than operations per second.
func perOp(cpu time.Duration, r load.Result) float64 {
	if r.OK == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / 1000 / float64(r.OK)
}
