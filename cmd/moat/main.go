// Command moat is the account-security server and its operator tools.
// Run `moat --help` for the commands.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
