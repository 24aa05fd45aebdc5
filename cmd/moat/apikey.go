package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apikey"
	"github.com/moat-dev/moat/internal/store"
)

// `moat apikey`: operators script API keys. Keys made here are e-mailed to
// their owner and audited like any other (the actor is "cli"); no step-up
// is asked, since whoever runs this command holds the database already.

func (c *cli) apikey(args []string) int {
	return c.dispatch("apikey", args, []subcommand{
		{"create", c.apikeyCreate},
		{"list", c.apikeyList},
		{"revoke", c.apikeyRevoke},
		{"rotate", c.apikeyRotate},
	})
}

// listFlag collects a repeatable flag; each value may also hold several
// items separated by commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// keyJSON is a key in --json output. It never holds the secret, sealed or
// not; secretJSON adds the secret where it is shown once.
type keyJSON struct {
	ID                  string     `json:"id"`
	AccountID           string     `json:"account_id"`
	Name                string     `json:"name"`
	PublicKey           string     `json:"public_key"`
	Permissions         []string   `json:"permissions"`
	AllowedIPs          []string   `json:"allowed_ips"`
	ExpiresAt           *time.Time `json:"expires_at"`
	NonceWindow         uint64     `json:"nonce_window"`
	HasPassword         bool       `json:"has_password"`
	CreatedAt           time.Time  `json:"created_at"`
	LastUsedAt          *time.Time `json:"last_used_at"`
	LastUsedIP          string     `json:"last_used_ip,omitempty"`
	OldSecretValidUntil *time.Time `json:"old_secret_valid_until,omitempty"`
	Expired             bool       `json:"expired"`
	Unused              bool       `json:"unused"`
}

type secretJSON struct {
	Key    keyJSON `json:"key"`
	Secret string  `json:"secret"`
}

func keyOut(v apikey.View) keyJSON {
	allow := v.AllowedIPs
	if allow == nil {
		allow = []string{}
	}
	return keyJSON{ID: v.ID, AccountID: v.AccountID, Name: v.Name, PublicKey: v.PublicKey,
		Permissions: v.Permissions.Slugs(), AllowedIPs: allow, ExpiresAt: timePtr(v.ExpiresAt),
		NonceWindow: v.NonceWindow, HasPassword: v.HasPassword, CreatedAt: v.CreatedAt.UTC(),
		LastUsedAt: timePtr(v.LastUsedAt), LastUsedIP: v.LastUsedIP,
		OldSecretValidUntil: timePtr(v.OldSecretValidUntil), Expired: v.Expired, Unused: v.Unused}
}

func (c *cli) apikeyCreate(args []string) int {
	const name = "apikey create"
	cmd := newCommand(name, "moat apikey create --email E --name N --permissions P1,P2 [--allow-ip CIDR]... [--expires T] [--nonce-window N] [--json] [flags]",
		"Creates an API key for the account and prints its public key and its secret\n"+
			"(the private key) once: store the secret in a secret manager, it cannot be\n"+
			"shown again. The owner is e-mailed. Permissions are written\n"+
			"query-funds, deposit-funds, withdraw-funds, query-open-orders,\n"+
			"query-closed-orders, query-ledger, export-data, create-modify-orders,\n"+
			"cancel-close-orders, access-websockets; none is implied.")
	email := cmd.fs.String("email", "", "e-mail `address` of the account that owns the key (required)")
	keyName := cmd.fs.String("name", "", "`name` of the key: which program uses it (required)")
	var perms, allow listFlag
	cmd.fs.Var(&perms, "permissions", "comma-separated `permissions` (required; repeatable)")
	cmd.fs.Var(&allow, "allow-ip", "an IP address or CIDR range allowed to use the key (repeatable; default: any address)")
	expires := cmd.fs.String("expires", "", "when the key stops working: an RFC 3339 `time` (2030-01-31T00:00:00Z) or a duration from now (720h, 90d)")
	window := cmd.fs.Uint64("nonce-window", 0, "accept nonces up to `N` below the highest once (0: strictly increasing)")
	asJSON := cmd.fs.Bool("json", false, "print the key and its secret as JSON")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	switch {
	case len(cmd.args) > 0:
		return c.usageError(name, "unexpected argument %q", cmd.args[0])
	case strings.TrimSpace(*email) == "":
		return c.usageError(name, "--email is required")
	case strings.TrimSpace(*keyName) == "":
		return c.usageError(name, "--name is required")
	case len(perms) == 0:
		return c.usageError(name, "--permissions is required, e.g. --permissions query-funds,query-open-orders")
	}
	if _, err := apikey.ParsePermissionList(perms); err != nil {
		return c.usageError(name, "--permissions: %v", err)
	}
	var exp time.Time
	if *expires != "" {
		var err error
		if exp, err = parseExpiry(*expires, time.Now()); err != nil {
			return c.usageError(name, "--expires %q: %v", *expires, err)
		}
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()
	a, err := accountByEmail(c, srv.Store(), *email)
	if err != nil {
		return c.fail(name, err)
	}
	v, secret, err := srv.APIKeys().OperatorCreate(c.ctx, a.ID, apikey.CreateInput{
		Name: *keyName, Permissions: perms, AllowedIPs: allow, ExpiresAt: exp, NonceWindow: *window,
	})
	if err != nil {
		return c.fail(name, describe(err))
	}
	if *asJSON {
		return c.printJSON(name, secretJSON{Key: keyOut(v), Secret: secret})
	}
	fmt.Fprintf(c.stdout, "created API key %q for %s (id %s)\n", v.Name, a.Email, v.ID)
	printSecret(c, v, secret)
	return exitOK
}

// printSecret prints a new key's credentials; the advice goes to stderr
// so that stdout is only what a script reads.
func printSecret(c *cli, v apikey.View, secret string) {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "API key:\t%s\n", v.PublicKey)
	fmt.Fprintf(tw, "Private key:\t%s\n", secret)
	fmt.Fprintf(tw, "Permissions:\t%s\n", v.Permissions)
	fmt.Fprintf(tw, "Allowed IPs:\t%s\n", orAny(v.AllowedIPs))
	exp := "never"
	if !v.ExpiresAt.IsZero() {
		exp = v.ExpiresAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "Expires:\t%s\n", exp)
	if !v.OldSecretValidUntil.IsZero() {
		fmt.Fprintf(tw, "Old secret valid until:\t%s\n", v.OldSecretValidUntil.UTC().Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintln(c.stderr, "Store the private key in a secret manager now: it cannot be shown again.")
}

func orAny(ips []string) string {
	if len(ips) == 0 {
		return "any address"
	}
	return strings.Join(ips, ",")
}

func (c *cli) apikeyList(args []string) int {
	const name = "apikey list"
	cmd := newCommand(name, "moat apikey list --email E [--json] [flags]",
		"Lists the account's API keys, newest first. Secrets are never shown.")
	email := cmd.fs.String("email", "", "e-mail `address` of the account (required)")
	asJSON := cmd.fs.Bool("json", false, "print a JSON array")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	if len(cmd.args) > 0 {
		return c.usageError(name, "unexpected argument %q", cmd.args[0])
	}
	if strings.TrimSpace(*email) == "" {
		return c.usageError(name, "--email is required")
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()
	a, err := accountByEmail(c, srv.Store(), *email)
	if err != nil {
		return c.fail(name, err)
	}
	views, err := srv.APIKeys().List(c.ctx, a.ID)
	if err != nil {
		return c.fail(name, describe(err))
	}
	if *asJSON {
		out := make([]keyJSON, 0, len(views))
		for _, v := range views {
			out = append(out, keyOut(v))
		}
		return c.printJSON(name, out)
	}
	if len(views) == 0 {
		fmt.Fprintf(c.stdout, "%s has no API keys\n", a.Email)
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAPI KEY\tPERMISSIONS\tALLOWED IPS\tCREATED\tLAST USED\tSTATUS\tID")
	for _, v := range views {
		last := "never"
		if !v.LastUsedAt.IsZero() {
			last = v.LastUsedAt.UTC().Format(time.DateOnly) + " from " + v.LastUsedIP
		}
		var status []string
		if v.Expired {
			status = append(status, "expired")
		}
		if v.Unused {
			status = append(status, "unused")
		}
		if len(status) == 0 {
			status = append(status, "active")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.PublicKey, v.Permissions, orAny(v.AllowedIPs),
			v.CreatedAt.UTC().Format(time.DateOnly), last, strings.Join(status, ","), v.ID)
	}
	tw.Flush()
	return exitOK
}

func (c *cli) apikeyRevoke(args []string) int {
	const name = "apikey revoke"
	cmd := newCommand(name, "moat apikey revoke KEY [flags]",
		"Deletes the API key named by its ID or its public key: calls signed with it\n"+
			"are refused at once (by other running nodes within apikeys.cache_ttl). The\n"+
			"owner is e-mailed.")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	ref, code, ok := c.oneKey(name, cmd)
	if !ok {
		return code
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()
	v, err := srv.APIKeys().OperatorRevoke(c.ctx, ref)
	if err != nil {
		return c.fail(name, describe(err))
	}
	fmt.Fprintf(c.stdout, "revoked API key %q (id %s)\n", v.Name, v.ID)
	return exitOK
}

func (c *cli) apikeyRotate(args []string) int {
	const name = "apikey rotate"
	cmd := newCommand(name, "moat apikey rotate KEY [--grace D] [--json] [flags]",
		"Gives the API key named by its ID or public key a new secret and prints it\n"+
			"once. The old secret stops working at once, or after --grace (at most 168h).\n"+
			"The owner is e-mailed.")
	grace := cmd.fs.Duration("grace", 0, "how long the old secret keeps working (`duration`, e.g. 1h or 24h)")
	asJSON := cmd.fs.Bool("json", false, "print the key and its new secret as JSON")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	ref, code, ok := c.oneKey(name, cmd)
	if !ok {
		return code
	}
	if *grace < 0 || *grace > apikey.MaxRotateGrace {
		return c.usageError(name, "--grace must be from 0 to 168h")
	}
	srv, code, ok := c.openFor(name, cmd)
	if !ok {
		return code
	}
	defer srv.Close()
	v, secret, err := srv.APIKeys().OperatorRotate(c.ctx, ref, *grace)
	if err != nil {
		return c.fail(name, describe(err))
	}
	if *asJSON {
		return c.printJSON(name, secretJSON{Key: keyOut(v), Secret: secret})
	}
	fmt.Fprintf(c.stdout, "rotated the secret of API key %q (id %s)\n", v.Name, v.ID)
	printSecret(c, v, secret)
	return exitOK
}

func (c *cli) oneKey(name string, cmd *command) (string, int, bool) {
	switch len(cmd.args) {
	case 0:
		return "", c.usageError(name, "missing the key: its ID or its public key"), false
	case 1:
		return cmd.args[0], exitOK, true
	}
	return "", c.usageError(name, "one key at a time (got %d arguments)", len(cmd.args)), false
}

func (c *cli) printJSON(name string, v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return c.fail(name, err)
	}
	return exitOK
}

// accountByEmail finds the account an operator names.
func accountByEmail(c *cli, st store.Store, email string) (store.Account, error) {
	e, err := account.NormalizeEmail(email)
	if err != nil {
		return store.Account{}, fmt.Errorf("--email %q: %v", email, describe(err))
	}
	a, err := st.GetAccountByEmail(c.ctx, e)
	if errors.Is(err, store.ErrNotFound) {
		return store.Account{}, fmt.Errorf("no account with the e-mail address %s", e)
	}
	return a, err
}

// parseExpiry reads --expires: an RFC 3339 time, or a duration from now
// (Go's, like 720h, or whole days like 90d). The service checks that it is
// in the future.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 36600 {
			return time.Time{}, errors.New("days must be a whole number from 1 to 36600")
		}
		return now.Add(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time such as 2030-01-31T00:00:00Z, or a duration such as 720h or 90d")
	}
	if d <= 0 {
		return time.Time{}, errors.New("the duration must be positive")
	}
	return now.Add(d), nil
}
