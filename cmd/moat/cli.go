package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/moat-dev/moat/internal/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed (or found a problem)
	exitUsage = 2 // bad arguments or configuration
)

// cli is one invocation: its streams and environment.
type cli struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	env    func(string) string
}

// run is moat's entry point, separate from main so tests run commands
// in-process. It returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdin, stdout, stderr, env)
}

func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, env: env}
	if len(args) == 0 {
		return c.serve(nil)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return c.serve(rest)
	case "migrate":
		return c.migrate(rest)
	case "user":
		return c.user(rest)
	case "admin":
		return c.admin(rest)
	case "audit":
		return c.audit(rest)
	case "apikey":
		return c.apikey(rest)
	case "version", "--version":
		return c.version(rest)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return runContext(ctx, []string{rest[0], "--help"}, stdin, stdout, stderr, env)
		}
		c.usage(stdout)
		return exitOK
	}
	if strings.HasPrefix(cmd, "-") {
		// `moat --addr :9000` means `moat serve --addr :9000`.
		return c.serve(args)
	}
	fmt.Fprintf(stderr, "moat: unknown command %q\n\n", cmd)
	c.usage(stderr)
	return exitUsage
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, `moat — account security for trading platforms.

Usage:
  moat [serve] [flags]                   run the server (the default command)
  moat migrate [flags]                   create or update the database schema
  moat user create --email E [--role user|support|admin] [--password-stdin]
                                         create an account whose e-mail is confirmed
  moat user list [--json] [--search S]   list accounts
  moat user lock E [--reason R]          lock an account and end its sessions
  moat user unlock E                     unlock an account
  moat admin create --email E --role support|admin [--password-stdin]
                                         create a staff account for the console at /admin
  moat admin list [--json] [--search S]  list staff accounts
  moat apikey create --email E --name N --permissions P1,P2 [--allow-ip CIDR]...
         [--expires T] [--nonce-window N] [--json]
                                         create an API key; prints its secret once
  moat apikey list --email E [--json]    list an account's API keys (never secrets)
  moat apikey revoke KEY                 delete an API key (by ID or public key)
  moat apikey rotate KEY [--grace D]     give a key a new secret; prints it once
  moat audit verify [--json]             check the audit log's hash chain
  moat version                           print the version

Every command reads the configuration the same way: defaults, then the TOML
file named by --config or MOAT_CONFIG, then MOAT_* environment variables,
then flags. "moat serve --help" lists every setting with its variable.
Run "moat COMMAND --help" for a command's flags.

Exit status: 0 success, 1 failure (including a broken audit chain),
2 bad arguments or configuration.
`)
}

// command is a subcommand's flag set plus moat's config flags.
type command struct {
	fs     *flag.FlagSet
	loader *config.Loader
	// args are the positional arguments, wherever they appeared.
	args []string
	// synopsis and about head the command's --help.
	synopsis, about string
	// settings lists every config setting in --help (serve only: the others
	// point there).
	settings bool
}

func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &command{fs: fs, loader: config.NewLoader(fs), synopsis: synopsis, about: about}
}

func (cmd *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", cmd.synopsis, cmd.about)
	own := false
	cmd.fs.VisitAll(func(f *flag.Flag) { own = own || !cmd.loader.Owns(f.Name) })
	if own {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, cmd.fs, func(name string) bool { return !cmd.loader.Owns(name) })
	}
	fmt.Fprint(w, "\nConfiguration flags:\n")
	printFlags(w, cmd.fs, cmd.loader.Owns)
	if cmd.settings {
		fmt.Fprint(w, "\nSettings (TOML key, environment variable, flag). Later sources override\nearlier ones: defaults < config file < environment < flags. Settings\nholding secrets have no flag, so they never show in the process list.\n\n")
		config.PrintSettings(w)
	} else {
		fmt.Fprint(w, "\nEvery setting can also come from the config file or MOAT_* variables;\nsee \"moat serve --help\".\n")
	}
}

// parse parses args, allowing flags before and after positional arguments
// (`moat user lock a@example.com --reason "stolen phone"`). It returns an
// exit code and false when the command should stop (help or a bad flag).
func (c *cli) parse(cmd *command, args []string) (int, bool) {
	for {
		err := cmd.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			cmd.printHelp(c.stdout)
			return exitOK, false
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "moat %s: %v\nRun \"moat %s --help\" for usage.\n", cmd.fs.Name(), err, cmd.fs.Name())
			return exitUsage, false
		}
		args = cmd.fs.Args()
		if len(args) == 0 {
			return exitOK, true
		}
		cmd.args = append(cmd.args, args[0])
		args = args[1:]
	}
}

// load reads the configuration; problems go to stderr.
func (c *cli) load(cmd *command) (config.Config, int, bool) {
	cfg, err := cmd.loader.Load(c.env)
	if err != nil {
		fmt.Fprintf(c.stderr, "moat %s: %v\n", cmd.fs.Name(), err)
		return config.Config{}, exitUsage, false
	}
	return cfg, exitOK, true
}

// fail prints err for command name and returns exitFail.
func (c *cli) fail(name string, err error) int {
	fmt.Fprintf(c.stderr, "moat %s: %v\n", name, err)
	return exitFail
}

// usageError prints a usage problem and returns exitUsage.
// subcommand is one verb of a command group such as "moat user".
type subcommand struct {
	name string
	run  func(args []string) int
}

// dispatch runs the subcommand of group named by args[0], or explains what
// the group's subcommands are.
func (c *cli) dispatch(group string, args []string, subs []subcommand) int {
	names := make([]string, len(subs))
	for i, sc := range subs {
		names[i] = sc.name
	}
	want := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(args) == 0 {
		return c.usageError(group, "missing subcommand: %s", want)
	}
	for _, sc := range subs {
		if args[0] == sc.name {
			return sc.run(args[1:])
		}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		c.usage(c.stdout)
		return exitOK
	}
	return c.usageError(group, "unknown subcommand %q: want %s", args[0], want)
}

func (c *cli) usageError(name, format string, args ...any) int {
	fmt.Fprintf(c.stderr, "moat %s: %s\nRun \"moat %s --help\" for usage.\n", name, fmt.Sprintf(format, args...), name)
	return exitUsage
}

// printFlags lists the flags of fs that include accepts, GNU-style (--name VALUE), as users type them.
func printFlags(w io.Writer, fs *flag.FlagSet, include func(name string) bool) {
	fs.VisitAll(func(f *flag.Flag) {
		if !include(f.Name) {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		switch typ {
		case "":
		case "value": // a config setting: name the placeholder after the flag
			line += " " + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		default:
			line += " " + strings.ToUpper(typ)
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
