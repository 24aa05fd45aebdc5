// Command coldstart measures how long the compiled moat binary takes from
// being started to answering GET /healthz with 200 — build time excluded.
// The first run starts on an empty data directory (it creates the SQLite
// database, migrates it and generates the encryption key); the later runs
// reuse that directory, as a restart does.
//
//	go run ./bench/coldstart [-runs 5]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/moat-dev/moat/bench/internal/harness"
	"github.com/moat-dev/moat/bench/internal/load"
)

func main() {
	runs := flag.Int("runs", 5, "number of starts to measure")
	flag.Parse()
	if err := run(*runs); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

// startTimeout bounds one start; a moat that is not healthy by then failed.
const startTimeout = 30 * time.Second

func run(runs int) error {
	if runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	tmp, err := os.MkdirTemp("", "moat-coldstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Println("building moat (not measured)…")
	bin, err := harness.Build(tmp)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err == nil {
		fmt.Printf("binary: %.1f MB\n", float64(fi.Size())/(1<<20))
	}

	dataDir := filepath.Join(tmp, "data")
	var times []time.Duration
	for i := range runs {
		d, rss, err := startOnce(bin, dataDir)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		label := "restart"
		if i == 0 {
			label = "first start (empty data dir)"
		}
		fmt.Printf("  run %d: %6.1f ms to healthy, peak RSS %s — %s\n", i+1, ms(d), rss, label)
		times = append(times, d)
	}
	if len(times) > 1 {
		rest := slices.Clone(times[1:])
		slices.Sort(rest)
		fmt.Printf("restart median: %.1f ms (min %.1f, max %.1f)\n", ms(rest[len(rest)/2]), ms(rest[0]), ms(rest[len(rest)-1]))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startOnce starts `moat serve` on a free loopback port, polls /healthz
// until 200, reads the child's peak RSS, and stops it with SIGTERM.
func startOnce(bin, dataDir string) (time.Duration, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, "", err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dataDir, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "MOAT_CONFIG=")
	cmd.Stderr = os.Stderr
	client := &http.Client{Timeout: time.Second}
	url := "http://" + addr + "/healthz"

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if err := load.Get(ctx, client, url, nil, http.StatusOK); err == nil {
			break
		}
		select {
		case err := <-exited:
			return 0, "", fmt.Errorf("moat exited before it was healthy: %v", err)
		case <-ctx.Done():
			stop()
			return 0, "", fmt.Errorf("not healthy after %v", startTimeout)
		case <-time.After(2 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	rss, err := harness.PeakRSSOf(cmd.Process.Pid)
	stop()
	if err != nil {
		return 0, "", err
	}
	return elapsed, rss.String(), nil
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
