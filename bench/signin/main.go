// Command signin measures full password sign-ins through the JSON API
// (POST /api/v1/signin, correct password, known device) at 4 concurrent
// connections, against raw argon2id hashes per second with the same
// parameters and the same parallelism (4 goroutines) on the same machine.
// A sign-in is one argon2id verification plus a few reads and one write
// transaction, so the ratio says how much of a sign-in is anything but the
// password hash.
//
//	go run ./bench/signin [-duration 1s] [-rounds 12] [-conns 4]
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
// Two baselines run in this process while the server is idle, with the
// same GOMAXPROCS and 4 goroutines: raw argon2.IDKey calls (the target's
// "raw argon2id hash rate"), and password.Hasher.Verify, the hash as moat
// does it (it lets at most GOMAXPROCS computations run at once, which on a
// busy machine is faster than 4 interleaved ones). moat/raw is the target
// figure; moat/Verify is what a sign-in adds to its hash. The three are
// measured in alternating rounds, so a change of load on a shared machine
// hits all, and the CPU time per operation is printed too: a busy machine
// disturbs it less than operations per second.
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
	"github.com/moat-dev/moat/internal/password"
)

func main() {
	duration := flag.Duration("duration", time.Second, "how long to measure each side in each round")
	rounds := flag.Int("rounds", 12, "alternating measurement rounds")
	conns := flag.Int("conns", 4, "concurrent connections (and hashing goroutines)")
	flag.Parse()
	if err := run(*duration, *rounds, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "signin:", err)
		os.Exit(1)
	}
}

const (
	email = "bench@example.com"
	pw    = "violet-tractor-mango-cloud-91"
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
		Email: email, Password: pw,
	})
	if err != nil {
		return err
	}
	defer m.Close()

	ctx := context.Background()
	client := load.Client(conns)
	// The first sign-in registers the device; later ones present its token,
	// as an app does, so each is a sign-in from a known device.
	_, deviceToken, err := m.SignIn(ctx, client, email, pw, "")
	if err != nil {
		return fmt.Errorf("first sign-in: %w", err)
	}
	signIn := func(ctx context.Context) error {
		_, _, err := m.SignIn(ctx, client, email, pw, deviceToken)
		return err
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	rawHash := func(context.Context) error {
		argon2.IDKey([]byte(pw), salt, s.Argon2Time, s.Argon2MemoryKiB, s.Argon2Threads, 32)
		return nil
	}
	hasher, err := password.NewHasher(password.Params{
		MemoryKiB: s.Argon2MemoryKiB, Time: s.Argon2Time, Threads: s.Argon2Threads,
		SaltLen: password.DefaultParams().SaltLen, KeyLen: password.DefaultParams().KeyLen,
	}, rand.Reader)
	if err != nil {
		return err
	}
	stored, err := hasher.Hash(pw)
	if err != nil {
		return err
	}
	verify := func(context.Context) error {
		if ok, _, err := hasher.Verify(pw, stored); !ok || err != nil {
			return fmt.Errorf("verify: %v %v", ok, err)
		}
		return nil
	}

	fmt.Printf("sign-in: %d connections, %d rounds of %v per side, argon2id m=%d KiB t=%d p=%d, GOMAXPROCS=%d, load average %s\n",
		conns, rounds, duration, s.Argon2MemoryKiB, s.Argon2Time, s.Argon2Threads, runtime.GOMAXPROCS(0), harness.LoadAverage())
	sides := []struct {
		name string
		op   func(context.Context) error
		proc func() (time.Duration, error) // whose CPU time the side uses
		res  load.Result
		cpu  time.Duration
		per  []float64 // per round
	}{
		{name: "moat POST /api/v1/signin", op: signIn, proc: m.Server().CPUTime},
		{name: "raw argon2id (argon2.IDKey)", op: rawHash, proc: self},
		{name: "moat's hash (Hasher.Verify)", op: verify, proc: self},
	}
	for _, sd := range sides { // warm up
		load.Run(conns, duration, sd.op)
	}
	for r := range rounds {
		line := ""
		for i := range sides {
			sd := &sides[i]
			c0, _ := sd.proc()
			res := load.Run(conns, duration, sd.op)
			c1, _ := sd.proc()
			sd.res, sd.cpu = sd.res.Add(res), sd.cpu+c1-c0
			sd.per = append(sd.per, res.PerSecond())
			line += fmt.Sprintf("  %.1f/s", res.PerSecond())
		}
		fmt.Printf("  round %d (moat, raw, Verify):%s\n", r+1, line)
	}
	for _, sd := range sides {
		fmt.Printf("  %-28s %s; CPU %.1f ms each\n", sd.name+":", sd.res, perOp(sd.cpu, sd.res))
	}
	moat, raw, ver := sides[0], sides[1], sides[2]
	if raw.res.PerSecond() > 0 && ver.res.PerSecond() > 0 {
		fmt.Printf("  ratio moat/raw: %.2f over all rounds, median of the rounds %.2f (target >= 0.90)\n",
			moat.res.PerSecond()/raw.res.PerSecond(), medianRatio(moat.per, raw.per))
		fmt.Printf("  ratio moat/Verify: %.2f over all rounds, median of the rounds %.2f (what a sign-in adds to its hash)\n",
			moat.res.PerSecond()/ver.res.PerSecond(), medianRatio(moat.per, ver.per))
	}
	if peak, err := m.Server().PeakRSS(); err == nil {
		fmt.Printf("  moat server peak RSS: %s\n", peak)
	}
	fmt.Printf("  load average after: %s\n", harness.LoadAverage())
	if moat.res.Failed > 0 || ver.res.Failed > 0 {
		return fmt.Errorf("some sign-ins or verifications failed")
	}
	return nil
}

// self is this process's CPU time.
func self() (time.Duration, error) { return harness.CPUTimeOf(os.Getpid()) }

// medianRatio is the median of a[i]/b[i].
func medianRatio(a, b []float64) float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return load.Median(r)
}

// perOp is CPU time per successful operation in ms: what a busy shared
// machine disturbs less than operations per second.
func perOp(cpu time.Duration, r load.Result) float64 {
	if r.OK == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / 1000 / float64(r.OK)
}
