package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
)

// cliActor is the audit log's actor for operator commands.
const cliActor = "cli"

func (c *cli) user(args []string) int {
	return c.dispatch("user", args, []subcommand{
		{"create", c.userCreate},
		{"list", c.userList},
		{"lock", c.userLock},
		{"unlock", c.userUnlock},
	})
}

func (c *cli) userCreate(args []string) int {
	return c.createAccount(args, createSpec{
		name:     "user create",
		synopsis: "moat user create --email E [--role user|support|admin] [--password-stdin] [flags]",
		about: "Creates an account whose e-mail address counts as confirmed, e.g. the first\n" +
			"admin. The password is read from standard input with --password-stdin (one\n" +
			"line), or prompted for without echo when standard input is a terminal. It\n" +
			"must pass the same password rules as sign-up.",
		roles:       []store.Role{store.RoleUser, store.RoleSupport, store.RoleAdmin},
		defaultRole: store.RoleUser,
		done: func(_ config.Config, a store.Account) {
			fmt.Fprintf(c.stdout, "created %s account %s (id %s)\n", a.Role, a.Email, a.ID)
		},
	})
}

// createSpec is one command that creates a confirmed account (`user
// create`, `admin create`): its help, the roles it accepts, and what it
// prints once the account exists.
type createSpec struct {
	name, synopsis, about string
	roles                 []store.Role
	defaultRole           store.Role
	done                  func(cfg config.Config, a store.Account)
}

// createAccount parses --email, --role and --password-stdin, reads the
// password and creates the account through the account service.
func (c *cli) createAccount(args []string, spec createSpec) int {
	name := spec.name
	cmd := newCommand(name, spec.synopsis, spec.about)
	names := make([]string, len(spec.roles))
	for i, r := range spec.roles {
		names[i] = string(r)
	}
	want := strings.Join(names, ", ")
	if n := len(names); n > 1 {
		want = strings.Join(names[:n-1], ", ") + " or " + names[n-1]
	}
	email := cmd.fs.String("email", "", "e-mail `address` of the account (required)")
	role := cmd.fs.String("role", string(spec.defaultRole), "`role`: "+want)
	fromStdin := cmd.fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	if len(cmd.args) > 0 {
		return c.usageError(name, "unexpected argument %q (the e-mail goes in --email)", cmd.args[0])
	}
	if strings.TrimSpace(*email) == "" {
		return c.usageError(name, "--email is required")
	}
	if *role == "" {
		return c.usageError(name, "--role is required: %s", want)
	}
	r := store.Role(*role)
	if !slices.Contains(spec.roles, r) {
		return c.usageError(name, "--role %q: want %s", *role, want)
	}
	cfg, code, ok := c.load(cmd)
	if !ok {
		return code
	}
	pw, err := c.readPassword(*fromStdin)
	if err != nil {
		return c.fail(name, err)
	}
	srv, err := c.open(name, cfg)
	if err != nil {
		return c.fail(name, err)
	}
	defer srv.Close()
	a, err := srv.Accounts().CreateConfirmedUser(c.ctx, *email, pw, r, cliActor)
	if err != nil {
		return c.fail(name, describe(err))
	}
	spec.done(cfg, a)
	return exitOK
}

// readPassword reads one line from stdin (--password-stdin), or prompts
// twice without echo on a terminal.
func (c *cli) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(c.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("no password on standard input")
		}
		return pw, nil
	}
	f, ok := c.stdin.(*os.File)
	if !ok || !isTerminal(f) {
		return "", errors.New("no password: pipe it in with --password-stdin, or run in a terminal to be asked for it")
	}
	fmt.Fprint(c.stderr, "Password: ")
	pw, err := readNoEcho(f)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(c.stderr, "Repeat password: ")
	again, err := readNoEcho(f)
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the two passwords differ; nothing was created")
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}

// userJSON is an account in `user list --json`. It never holds the
// password hash.
type userJSON struct {
	ID               string     `json:"id"`
	Email            string     `json:"email"`
	Role             store.Role `json:"role"`
	EmailConfirmedAt *time.Time `json:"email_confirmed_at"`
	LockedAt         *time.Time `json:"locked_at"`
	LockReason       string     `json:"lock_reason,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (c *cli) userList(args []string) int {
	return c.listAccounts(args, "user list", "moat user list [--json] [--search S] [flags]",
		"Lists accounts ordered by e-mail address.", nil)
}

// listAccounts lists the accounts keep accepts (nil: all), as a table or
// JSON (`user list`, `admin list`).
func (c *cli) listAccounts(args []string, name, synopsis, about string, keep func(store.Account) bool) int {
	cmd := newCommand(name, synopsis, about)
	asJSON := cmd.fs.Bool("json", false, "print a JSON array")
	search := cmd.fs.String("search", "", "only addresses containing this `text` (case-insensitive)")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	if len(cmd.args) > 0 {
		return c.usageError(name, "unexpected argument %q (use --search to filter)", cmd.args[0])
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()

	const page = 100
	var all []store.Account
	opt := store.ListAccountsOptions{EmailContains: *search, Limit: page}
	for {
		as, err := srv.Accounts().ListUsers(c.ctx, opt)
		if err != nil {
			return c.fail(name, describe(err))
		}
		for _, a := range as {
			if keep == nil || keep(a) {
				all = append(all, a)
			}
		}
		if len(as) < page {
			break
		}
		opt.AfterEmail = as[len(as)-1].Email
	}

	if *asJSON {
		out := make([]userJSON, 0, len(all))
		for _, a := range all {
			out = append(out, userJSON{ID: a.ID, Email: a.Email, Role: a.Role,
				EmailConfirmedAt: timePtr(a.EmailConfirmedAt), LockedAt: timePtr(a.LockedAt),
				LockReason: a.LockReason, CreatedAt: a.CreatedAt.UTC()})
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return c.fail(name, err)
		}
		return exitOK
	}
	if len(all) == 0 {
		fmt.Fprintln(c.stdout, "no accounts")
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tROLE\tSTATUS\tCREATED\tID")
	for _, a := range all {
		status := "active"
		switch {
		case !a.LockedAt.IsZero():
			status = "locked"
			if a.LockReason != "" {
				status += " (" + a.LockReason + ")"
			}
		case a.EmailConfirmedAt.IsZero():
			status = "unconfirmed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Email, a.Role, status, a.CreatedAt.UTC().Format(time.DateOnly), a.ID)
	}
	tw.Flush()
	return exitOK
}

func (c *cli) userLock(args []string) int {
	const name = "user lock"
	cmd := newCommand(name, "moat user lock EMAIL [--reason R] [flags]",
		"Locks the account and ends all its sessions; it stays locked until\n"+
			"\"moat user unlock\". The reason is kept with the account and in the audit log.")
	reason := cmd.fs.String("reason", "locked by an operator", "why the account is locked (kept with the account and in the audit log)")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	email, code, ok := c.oneEmail(name, cmd)
	if !ok {
		return code
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()
	if err := srv.Accounts().Lock(c.ctx, email, *reason, cliActor); err != nil {
		return c.fail(name, describe(err))
	}
	fmt.Fprintf(c.stdout, "locked %s; its sessions are revoked\n", email)
	return exitOK
}

func (c *cli) userUnlock(args []string) int {
	const name = "user unlock"
	cmd := newCommand(name, "moat user unlock EMAIL [flags]",
		"Unlocks the account and clears its failed sign-in counters.")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	email, code, ok := c.oneEmail(name, cmd)
	if !ok {
		return code
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()
	if err := srv.Accounts().Unlock(c.ctx, email, cliActor); err != nil {
		return c.fail(name, describe(err))
	}
	fmt.Fprintf(c.stdout, "unlocked %s\n", email)
	return exitOK
}

func (c *cli) oneEmail(name string, cmd *command) (string, int, bool) {
	switch len(cmd.args) {
	case 0:
		return "", c.usageError(name, "missing the account's e-mail address"), false
	case 1:
		return cmd.args[0], exitOK, true
	}
	return "", c.usageError(name, "one e-mail address at a time (got %d arguments)", len(cmd.args)), false
}

// describe turns a service error into what an operator should read: the
// message of an application error (with its field), or the full internal
// error — the operator is the one who needs its details.
func describe(err error) error {
	e, ok := apperr.As(err)
	if !ok || e.Code == apperr.Internal {
		return err
	}
	if e.Field != "" {
		return fmt.Errorf("%s: %s", e.Field, e.Message)
	}
	return errors.New(e.Message)
}
