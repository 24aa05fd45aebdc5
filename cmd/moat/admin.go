package main

import (
	"fmt"

	"github.com/moat-dev/moat/internal/admin"
	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/store"
)

// `moat admin` manages staff accounts: the support and admin roles that
// open the support console. It creates them through the same code path as
// `moat user create` and lists them as `moat user list` does.

func (c *cli) admin(args []string) int {
	return c.dispatch("admin", args, []subcommand{
		{"create", c.adminCreate},
		{"list", c.adminList},
	})
}

func (c *cli) adminCreate(args []string) int {
	return c.createAccount(args, createSpec{
		name:     "admin create",
		synopsis: "moat admin create --email E --role support|admin [--password-stdin] [flags]",
		about: "Creates a staff account for the support console at /admin: support\n" +
			"(recovery cases, account lookup, lock, sign out) or admin (also unlock).\n" +
			"Its e-mail address counts as confirmed. The password is read from standard\n" +
			"input with --password-stdin (one line), or prompted for without echo when\n" +
			"standard input is a terminal. The console opens only to a session signed\n" +
			"in with a security key, so the new staff member registers one first.",
		roles:       []store.Role{store.RoleSupport, store.RoleAdmin},
		defaultRole: "",
		done: func(cfg config.Config, a store.Account) {
			origin := cfg.Origin()
			fmt.Fprintf(c.stdout, "created %s account %s (id %s)\n\n", a.Role, a.Email, a.ID)
			fmt.Fprintf(c.stdout, "Next steps for %s:\n", a.Email)
			fmt.Fprintf(c.stdout, "  1. Sign in at %s/login with the password.\n", origin)
			fmt.Fprintf(c.stdout, "  2. Register a security key in Security settings (%s/account/security).\n", origin)
			fmt.Fprintf(c.stdout, "  3. Sign out, sign in again with the key, then open %s%s.\n", origin, admin.Path)
		},
	})
}

func (c *cli) adminList(args []string) int {
	return c.listAccounts(args, "admin list", "moat admin list [--json] [--search S] [flags]",
		"Lists the staff accounts (roles support and admin) ordered by e-mail address.",
		func(a store.Account) bool { return a.Role == store.RoleSupport || a.Role == store.RoleAdmin })
}
