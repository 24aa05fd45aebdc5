package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at release builds: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func (c *cli) version(args []string) int {
	if len(args) > 0 {
		return c.usageError("version", "unexpected argument %q", args[0])
	}
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(c.stdout, "moat %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
