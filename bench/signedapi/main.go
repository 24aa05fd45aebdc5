// Command signedapi measures moat's signed API: Kraken-signed Balance
// calls (POST /0/private/Balance, answered by the built-in sandbox
// exchange in the same process) at 32 concurrent keep-alive connections on
// loopback, against a bare net/http handler that reads the same signed
// request and answers the same JSON, measured in the same run with the
// same client.
//
//	go run ./bench/signedapi [-duration 3s] [-rounds 3] [-conns 32] [-keys 1000000]
//
// moat runs as its own process (bench/internal/harness): the real binary,
// an account made with `moat user create`, one API key per connection made
// with `moat apikey create --json`, and `moat serve` on a free loopback
// port. Each connection's key has its own strictly increasing nonce, so
// every request is a fresh, fully verified call: key lookup, signature,
// allowlist, nonce, permission, rate counter, the signed identity headers,
// and the sandbox reading the account's balances from SQLite. The rate
// limit is lifted for the run (a "bench" tier through MOAT_APIKEYS_TIERS),
// so the counter is still updated on every call but never refuses one.
//
// With -keys N, N more keys (of another account) are then written straight
// into moat's SQLite file in transactions of 100,000, and the same measurement is
// made again against the bigger table, so the two figures can be compared
// (the target is a drop of at most 10%).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/moat-dev/moat/bench/internal/harness"
	"github.com/moat-dev/moat/bench/internal/load"
)

const (
	email     = "bench@example.com"
	bulkEmail = "bulk@example.com"
	password  = "violet-tractor-mango-cloud-91"
	// bareEnv marks this program started again as the bare server.
	bareEnv    = "MOAT_BENCH_SIGNEDAPI_BARE"
	bareBanner = "bare kraken server listening on "
	// balances is what both servers answer (the sandbox's development
	// seed, in Kraken's envelope).
	balances = `{"error":[],"result":{"XETH":"5.0000000000","XXBT":"0.5000000000","ZUSD":"10000.0000"}}`
)

func main() {
	serveBareIfAsked()
	duration := flag.Duration("duration", 3*time.Second, "how long to measure each server in each round")
	rounds := flag.Int("rounds", 3, "alternating measurement rounds")
	conns := flag.Int("conns", 32, "concurrent keep-alive connections, one API key each")
	keys := flag.Int("keys", 0, "then preload this many more API keys into the store and measure again (e.g. 1000000)")
	flag.Parse()
	if err := run(*duration, *rounds, *conns, *keys); err != nil {
		fmt.Fprintln(os.Stderr, "signedapi:", err)
		os.Exit(1)
	}
}

// credential is one connection's key and its nonce sequence.
type credential struct {
	key    string
	secret []byte
	nonce  atomic.Uint64
}

func run(duration time.Duration, rounds, conns, extraKeys int) error {
	if rounds < 1 || conns < 1 || duration <= 0 || extraKeys < 0 {
		return fmt.Errorf("-rounds, -conns and -duration must be positive, -keys not negative")
	}
	m, err := harness.StartMoat(harness.Options{
		Env: []string{
			"MOAT_SECURITY_DEVICE_APPROVAL=false",
			"MOAT_DEV=true", // the sandbox seeds new accounts with play money
			`MOAT_APIKEYS_TIERS={"bench":{"max":1e15,"decay_per_second":1e15}}`,
			"MOAT_APIKEYS_DEFAULT_TIER=bench",
		},
		Email: email, Password: password,
	})
	if err != nil {
		return err
	}
	defer m.Close()
	bare, err := startBare()
	if err != nil {
		return err
	}
	defer bare.stop()

	fmt.Fprintf(os.Stderr, "creating %d API keys with `moat apikey create`…\n", conns)
	pool := make(chan *credential, conns)
	for i := range conns {
		out, err := m.CLI("", "apikey", "create", "--email", email, "--name", "bench "+strconv.Itoa(i),
			"--permissions", "query-funds", "--allow-ip", "127.0.0.1", "--json")
		if err != nil {
			return err
		}
		var k struct {
			Key struct {
				PublicKey string `json:"public_key"`
			} `json:"key"`
			Secret string `json:"secret"`
		}
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			return fmt.Errorf("apikey create --json: %w: %s", err, out)
		}
		c := &credential{key: k.Key.PublicKey}
		if c.secret, err = base64.StdEncoding.DecodeString(k.Secret); err != nil {
			return err
		}
		c.nonce.Store(uint64(time.Now().UnixMilli()))
		pool <- c
	}

	client := load.Client(conns)
	call := func(ctx context.Context, base string) error {
		c := <-pool
		defer func() { pool <- c }()
		return signedBalance(ctx, client, base, c)
	}
	// The answers must be right, or the numbers mean nothing: the seeded
	// balances, and a replayed nonce refused.
	if err := call(context.Background(), m.URL); err != nil {
		return fmt.Errorf("first signed call: %w", err)
	}
	if err := checkReplayRefused(client, m.URL, pool); err != nil {
		return err
	}

	fmt.Printf("signed API: Balance at %d keep-alive connections (one key each), %d rounds of %v per server, GOMAXPROCS=%d (client), load average %s\n",
		conns, rounds, duration, runtime.GOMAXPROCS(0), harness.LoadAverage())
	first := measure(m, bare, call, duration, rounds, conns, fmt.Sprintf("%d keys in the store", conns))
	if first.failed {
		return errors.New("some requests failed")
	}
	if extraKeys == 0 {
		return nil
	}

	fmt.Fprintf(os.Stderr, "preloading %d API keys into %s…\n", extraKeys, m.DataDir())
	start := time.Now()
	if err := preload(m, extraKeys); err != nil {
		return err
	}
	fmt.Printf("  preloaded %d keys in %.1fs (database %s)\n", extraKeys, time.Since(start).Seconds(), fileSize(filepath.Join(m.DataDir(), "moat.db")))
	second := measure(m, bare, call, duration, rounds, conns, fmt.Sprintf("%d keys in the store", conns+extraKeys))
	if second.failed {
		return errors.New("some requests failed")
	}
	// On a shared machine the load of other processes moves both servers'
	// figures; the ratio to the bare handler measured in the same rounds,
	// and the server's CPU time per request, are steadier than requests
	// per second alone.
	fmt.Printf("  with %d keys in the store instead of %d (target: a drop of at most 10%%):\n", conns+extraKeys, conns)
	fmt.Printf("    moat requests/s:             %7.0f vs %7.0f  change %+.1f%%\n", second.moat, first.moat, change(second.moat, first.moat))
	fmt.Printf("    ratio moat/bare:             %7.2f vs %7.2f  change %+.1f%%\n", second.ratio, first.ratio, change(second.ratio, first.ratio))
	fmt.Printf("    moat CPU per request (µs):   %7.1f vs %7.1f  change %+.1f%% (more CPU is a drop)\n", second.cpu, first.cpu, change(second.cpu, first.cpu))
	return nil
}

// figures are one measurement's results.
type figures struct {
	moat, bare, ratio float64
	cpu               float64 // moat server CPU µs per request
	failed            bool
}

// change is how much now differs from before, in percent.
func change(now, before float64) float64 {
	if before == 0 {
		return 0
	}
	return 100 * (now/before - 1)
}

// measure runs alternating rounds against moat and the bare server.
func measure(m *harness.Moat, bare *bareServer, call func(context.Context, string) error, duration time.Duration, rounds, conns int, label string) figures {
	servers := []struct {
		name string
		url  string
		pid  int
	}{
		{"moat", m.URL, m.Server().Pid()},
		{"bare", bare.url, bare.pid},
	}
	run := func(url string, d time.Duration) load.Result {
		return load.Run(conns, d, func(ctx context.Context) error { return call(ctx, url) })
	}
	for _, s := range servers { // warm up: connections, caches
		run(s.url, duration/5)
	}
	totals := make([]load.Result, len(servers))
	cpu := make([]time.Duration, len(servers))
	for r := range rounds {
		var line string
		var perSec [2]float64
		for i, s := range servers {
			before, _ := harness.CPUTimeOf(s.pid)
			res := run(s.url, duration)
			after, _ := harness.CPUTimeOf(s.pid)
			cpu[i] += after - before
			totals[i] = totals[i].Add(res)
			perSec[i] = res.PerSecond()
			line += fmt.Sprintf("  %s %.0f/s", s.name, res.PerSecond())
		}
		fmt.Printf("  [%s] round %d:%s  ratio %.2f\n", label, r+1, line, perSec[0]/perSec[1])
	}
	f := figures{moat: totals[0].PerSecond(), bare: totals[1].PerSecond(), cpu: perRequest(cpu[0], totals[0])}
	for i, s := range servers {
		fmt.Printf("  [%s] %s: %s; server CPU per request %.1f µs\n", label, s.name, totals[i], perRequest(cpu[i], totals[i]))
	}
	if f.bare > 0 {
		f.ratio = f.moat / f.bare
	}
	peak, _ := m.Server().PeakRSS()
	fmt.Printf("  [%s] moat signed Balance %.0f/s, bare %.0f/s, ratio moat/bare %.2f; moat peak RSS so far %s\n", label, f.moat, f.bare, f.ratio, peak)
	f.failed = totals[0].Failed > 0 || totals[1].Failed > 0
	return f
}

func perRequest(cpu time.Duration, r load.Result) float64 {
	if r.OK == 0 {
		return 0
	}
	return float64(cpu.Microseconds()) / float64(r.OK)
}

// signedBalance sends one Kraken-signed Balance call with c's next nonce
// and checks the answer is the seeded balances.
func signedBalance(ctx context.Context, client *http.Client, base string, c *credential) error {
	req, err := signedRequest(ctx, base, c, c.nonce.Add(1))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(bytes.TrimSpace(body), []byte(balances)) {
		return fmt.Errorf("status %d, body %.200s", resp.StatusCode, body)
	}
	return nil
}

func signedRequest(ctx context.Context, base string, c *credential, nonce uint64) (*http.Request, error) {
	n := strconv.FormatUint(nonce, 10)
	body := "nonce=" + n
	const path = "/0/private/Balance"
	sum := sha256.Sum256([]byte(n + body))
	mac := hmac.New(sha512.New, c.secret)
	mac.Write([]byte(path))
	mac.Write(sum[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("API-Key", c.key)
	req.Header.Set("API-Sign", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return req, nil
}

// checkReplayRefused sends the same nonce twice: the second must be
// EAPI:Invalid nonce.
func checkReplayRefused(client *http.Client, base string, pool chan *credential) error {
	c := <-pool
	defer func() { pool <- c }()
	n := c.nonce.Add(1)
	for i, want := range []string{`"error":[]`, `"error":["EAPI:Invalid nonce"]`} {
		req, err := signedRequest(context.Background(), base, c, n)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			return fmt.Errorf("call %d with one nonce: %s, want %s", i+1, body, want)
		}
	}
	return nil
}

// preload writes n API keys of a second account straight into moat's
// SQLite file, in large transactions, while moat runs (SQLite lets one
// writer in beside its readers). They are real rows — unique random public keys,
// sealed-secret-sized blobs — that moat never opens.
func preload(m *harness.Moat, n int) error {
	if _, err := m.CLI(password+"\n", "user", "create", "--email", bulkEmail, "--password-stdin"); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(m.DataDir(), "moat.db")+"?_pragma=busy_timeout(60000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	var accountID string
	if err := db.QueryRowContext(ctx, `SELECT id FROM accounts WHERE email = ?`, bulkEmail).Scan(&accountID); err != nil {
		return fmt.Errorf("bulk account: %w", err)
	}
	now := time.Now().UnixMicro()
	buf := make([]byte, 16+42+108)
	for done := 0; done < n; done += preloadBatch {
		if err := insertKeys(ctx, db, accountID, done, min(n, done+preloadBatch), now, buf); err != nil {
			return err
		}
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `ANALYZE`)
	return err
}

// preloadBatch is how many keys one transaction writes: few enough that
// moat's own writers (the outbox) get their turn between batches.
const preloadBatch = 100_000

// insertKeys writes keys from up to to in one transaction.
func insertKeys(ctx context.Context, db *sql.DB, accountID string, from, to int, now int64, buf []byte) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO api_keys (id, account_id, name, public_key, secret_sealed,
		permissions, allowed_ips, nonce_window, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'query-funds', '', 0, ?, ?)`)
	if err != nil {
		return err
	}
	for i := from; i < to; i++ {
		if _, err := rand.Read(buf); err != nil {
			return err
		}
		id := base64.RawURLEncoding.EncodeToString(buf[:16])
		pub := base64.StdEncoding.EncodeToString(buf[16:58])
		if _, err := stmt.ExecContext(ctx, id, accountID, "bulk "+strconv.Itoa(i), pub, buf[58:], now, now); err != nil {
			return fmt.Errorf("insert key %d: %w", i, err)
		}
	}
	return tx.Commit()
}

func fileSize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "unknown size"
	}
	return harness.Bytes(fi.Size()).String()
}

// The bare server.

type bareServer struct {
	url  string
	pid  int
	cmd  *exec.Cmd
	done chan error
}

// startBare starts this program again as the bare server and waits for its
// address.
func startBare() (*bareServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), bareEnv+"=1")
	cmd.Stderr = os.Stderr
	setParentDeathSignal(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &bareServer{pid: cmd.Process.Pid, cmd: cmd, done: make(chan error, 1)}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), bareBanner); ok {
				urlc <- strings.TrimSpace(u)
			}
		}
		b.done <- cmd.Wait()
	}()
	select {
	case b.url = <-urlc:
		return b, nil
	case err := <-b.done:
		return nil, fmt.Errorf("bare server exited: %v", err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("bare server did not start")
	}
}

func (b *bareServer) stop() {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
	}
}

// serveBareIfAsked is the bare server: the cheapest handler that does what
// a client sees moat do — read the form body and answer the balances in
// Kraken's envelope — behind an http.Server with moat's header timeouts.
func serveBareIfAsked() {
	if os.Getenv(bareEnv) != "1" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare server:", err)
		os.Exit(1)
	}
	answer := []byte(balances)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Write(answer)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Printf("%shttp://%s\n", bareBanner, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "bare server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
