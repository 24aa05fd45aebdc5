// Package harness runs the servers the moat benchmarks measure as separate
// processes on 127.0.0.1, so that what a benchmark reports about a server
// (requests per second, peak RSS) is that server's and not the load
// generator's:
//
//   - moat: the real binary, built once with `go build ./cmd/moat`, set up
//     with the operator CLI (`moat migrate`, `moat user create
//     --password-stdin`) and run as `moat serve` on a free loopback port
//     with a temporary data directory and configuration from MOAT_*
//     environment variables;
//   - the bare net/http handler the session check is compared with: this
//     benchmark's own executable started again in "bare server" mode (see
//     ServeBareIfAsked).
//
// The children get SIGTERM when the benchmark ends or dies.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moat-dev/moat/internal/config"
)

// startTimeout bounds how long a child may take to start listening.
const startTimeout = 60 * time.Second

// Build compiles ./cmd/moat of the module the working directory is in into
// dir and returns the binary's path. The build is not measured.
func Build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "moat")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/moat")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/moat: %w", err)
	}
	return bin, nil
}

// moduleRoot is the directory of the go.mod that governs the working
// directory (the benchmarks are run from inside the repository).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the benchmark from inside the moat repository")
	}
	return filepath.Dir(gomod), nil
}

// Options configure a moat for a benchmark.
type Options struct {
	// Env are MOAT_* settings, e.g. "MOAT_SECURITY_DEVICE_APPROVAL=false".
	// Every other MOAT_* variable of the benchmark's own environment is
	// dropped, so a run does not depend on the shell it was started from.
	Env []string
	// Email and Password, when set, are an account created with
	// `moat user create --password-stdin` before the server starts.
	Email, Password string
}

// Moat is a `moat serve` child process.
type Moat struct {
	// URL is where it listens, e.g. http://127.0.0.1:41234.
	URL string
	// Bin is the moat binary.
	Bin string

	dir    string
	env    []string
	server *Process
}

// StartMoat builds moat, creates its data directory and the account, and
// starts `moat serve` on a free port of 127.0.0.1. It returns when the
// server answers /healthz with 200.
func StartMoat(opts Options) (_ *Moat, err error) {
	dir, err := os.MkdirTemp("", "moat-bench-")
	if err != nil {
		return nil, err
	}
	m := &Moat{dir: dir}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	fmt.Fprintln(os.Stderr, "building moat (not measured)…")
	if m.Bin, err = Build(dir); err != nil {
		return nil, err
	}
	m.env = append(cleanEnv(), "MOAT_CONFIG=", "MOAT_DATA_DIR="+filepath.Join(dir, "data"), "MOAT_LOG_LEVEL=warn")
	m.env = append(m.env, opts.Env...)

	if _, err := m.CLI("", "migrate"); err != nil {
		return nil, err
	}
	if opts.Email != "" {
		if _, err := m.CLI(opts.Password+"\n", "user", "create", "--email", opts.Email, "--password-stdin"); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(m.Bin, "serve", "--addr", "127.0.0.1:0")
	cmd.Env = m.env
	m.server, err = startChild(cmd, "moat listening on ")
	if err != nil {
		return nil, err
	}
	m.URL = m.server.Addr
	if err := waitHealthy(m.URL+"/healthz", m.server); err != nil {
		return nil, err
	}
	return m, nil
}

// CLI runs `moat args...` against the benchmark's data directory with
// stdin as standard input, and returns its standard output.
func (m *Moat) CLI(stdin string, args ...string) (string, error) {
	cmd := exec.Command(m.Bin, args...)
	cmd.Env = m.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("moat %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// Server is the `moat serve` process.
func (m *Moat) Server() *Process { return m.server }

// Close stops the server and removes the data directory and the binary.
func (m *Moat) Close() error {
	var err error
	if m.server != nil {
		err = m.server.Stop()
	}
	os.RemoveAll(m.dir)
	return err
}

// cleanEnv is this process's environment without MOAT_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MOAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// Process is a server child process.
type Process struct {
	// Addr is its base URL.
	Addr   string
	cmd    *exec.Cmd
	exited chan error
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// PeakRSS is the process's peak resident set size so far (VmHWM).
func (p *Process) PeakRSS() (Bytes, error) { return procStatus(p.Pid(), "VmHWM:") }

// ResetPeakRSS starts the process's peak RSS (VmHWM) over from its current
// RSS (Linux's /proc/<pid>/clear_refs), so a later PeakRSS is the peak of
// what happened in between.
func (p *Process) ResetPeakRSS() error {
	return os.WriteFile("/proc/"+strconv.Itoa(p.Pid())+"/clear_refs", []byte("5"), 0)
}

// RSS is the process's resident set size now (VmRSS).
func (p *Process) RSS() (Bytes, error) { return procStatus(p.Pid(), "VmRSS:") }

// CPUTime is the CPU time (user and system) the process has used so far,
// from /proc/<pid>/stat, in clock ticks of 1/100 s.
func (p *Process) CPUTime() (time.Duration, error) { return CPUTimeOf(p.Pid()) }

// CPUTimeOf is Process.CPUTime of any process (os.Getpid() for this one).
func CPUTimeOf(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, counted from the closing one.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 15 s).
func (p *Process) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		return <-p.exited
	}
}

// startChild starts cmd and waits for the line of its standard output
// that begins with prefix and carries its URL; the rest of its output is
// passed through.
func startChild(cmd *exec.Cmd, prefix string) (*Process, error) {
	setParentDeathSignal(cmd)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan error, 1)}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), prefix); ok && !sent {
				urlc <- strings.TrimSpace(u)
				sent = true
			}
		}
		io.Copy(io.Discard, out)
		p.exited <- cmd.Wait()
	}()
	select {
	case p.Addr = <-urlc:
		return p, nil
	case err := <-p.exited:
		return nil, fmt.Errorf("%s exited before listening: %v", filepath.Base(cmd.Path), err)
	case <-time.After(startTimeout):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start listening within %v", filepath.Base(cmd.Path), startTimeout)
	}
}

// waitHealthy polls url until it answers 200.
func waitHealthy(url string, p *Process) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("server exited: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not healthy within %v", url, startTimeout)
}

// bareEnv marks the child that serves the bare handler.
const bareEnv = "MOAT_BENCH_BARE_SERVER"

// bareBanner is the line the bare server prints with its URL.
const bareBanner = "bare server listening on "

// StartBare starts this executable again as the bare net/http server the
// session check is compared with. The benchmark's main must call
// ServeBareIfAsked first thing.
func StartBare() (*Process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(cleanEnv(), bareEnv+"=1")
	return startChild(cmd, bareBanner)
}

// ServeBareIfAsked serves the bare handler and exits when this process was
// started by StartBare; otherwise it returns at once.
//
// The bare handler does no work: it writes the answer moat's forward-auth
// gives for a valid session, the same headers with constant values of the
// same length, behind an http.Server with moat's default timeouts and
// header limit. What moat measures above it is then the work of checking
// the session, not a longer answer or other server settings.
func ServeBareIfAsked() {
	if os.Getenv(bareEnv) != "1" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare server:", err)
		os.Exit(1)
	}
	hc := config.Default().HTTP
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Cache-Control", "no-store")
			h.Set("X-Moat-Account-Id", "bench-account-id-22chr")
			h.Set("X-Moat-Role", "user")
			h.Set("X-Moat-Session-Id", "bench-session-id-22chr")
			w.WriteHeader(http.StatusOK)
		}),
		ReadHeaderTimeout: hc.ReadHeaderTimeout,
		ReadTimeout:       hc.ReadTimeout,
		WriteTimeout:      hc.WriteTimeout,
		IdleTimeout:       hc.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
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

// PeakRSSOf is the peak resident set size so far (VmHWM) of process pid.
func PeakRSSOf(pid int) (Bytes, error) { return procStatus(pid, "VmHWM:") }

// Bytes is a memory size.
type Bytes int64

func (b Bytes) String() string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

// procStatus reads a "kB" field of /proc/<pid>/status.
func procStatus(pid int, field string) (Bytes, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status %s %q: %w", pid, field, v, err)
			}
			return Bytes(kb << 10), nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}
