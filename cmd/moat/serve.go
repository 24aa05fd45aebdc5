package main

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/moat-dev/moat/internal/config"
	"github.com/moat-dev/moat/internal/server"
)

func (c *cli) serve(args []string) int {
	cmd := newCommand("serve", "moat serve [flags]",
		"Runs moat: the web pages, the JSON API (/api/v1/), forward-auth for reverse\n"+
			"proxies (/auth/verify), /healthz, /readyz and /metrics. The database schema\n"+
			"is migrated at start. SIGINT or SIGTERM stops it gracefully.")
	cmd.settings = true
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	if len(cmd.args) > 0 {
		return c.usageError("serve", "unexpected argument %q", cmd.args[0])
	}
	cfg, code, ok := c.load(cmd)
	if !ok {
		return code
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return c.fail("serve", err)
	}
	listenURL := config.OriginForAddr(ln.Addr().String())
	// With port 0 the kernel picks the port; a public origin derived from
	// the configured address must follow it.
	if cfg.PublicOrigin == config.OriginForAddr(cfg.Addr) {
		cfg.PublicOrigin = listenURL
	}

	logger := cfg.Log.NewLogger(c.stderr)
	srv, err := server.New(c.ctx, cfg, logger)
	if err != nil {
		ln.Close()
		return c.fail("serve", err)
	}
	defer srv.Close()

	fmt.Fprintf(c.stdout, "moat listening on %s\n", listenURL)
	if cfg.Origin() != listenURL {
		fmt.Fprintf(c.stdout, "public origin: %s\n", cfg.Origin())
	}
	if cfg.Dev {
		fmt.Fprintf(c.stdout, "dev mailbox: %s/dev/mailbox\n", cfg.Origin())
		if !loopbackOnly(ln.Addr()) {
			logger.Warn("development mode on a non-loopback address: anyone who can reach it can read " +
				"every e-mail (and its links) at /dev/mailbox; set dev = false or configure SMTP")
		}
	}
	if err := srv.Serve(c.ctx, ln); err != nil {
		return c.fail("serve", err)
	}
	fmt.Fprintln(c.stdout, "moat stopped")
	return exitOK
}

func loopbackOnly(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}

func (c *cli) migrate(args []string) int {
	cmd := newCommand("migrate", "moat migrate [flags]",
		"Creates the database schema or brings it up to date, then exits. It is safe\n"+
			"to run while moat serves, and from several nodes at once.")
	if code, ok := c.parse(cmd, args); !ok {
		return code
	}
	if len(cmd.args) > 0 {
		return c.usageError("migrate", "unexpected argument %q", cmd.args[0])
	}
	cfg, code, ok := c.load(cmd)
	if !ok {
		return code
	}
	applied, err := server.Migrate(c.ctx, cfg)
	if err != nil {
		return c.fail("migrate", err)
	}
	if len(applied) == 0 {
		fmt.Fprintln(c.stdout, "database schema is up to date")
		return exitOK
	}
	for _, v := range applied {
		fmt.Fprintf(c.stdout, "applied %s\n", v)
	}
	fmt.Fprintf(c.stdout, "database schema is up to date (%d migrations applied)\n", len(applied))
	return exitOK
}
