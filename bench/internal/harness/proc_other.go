//go:build !linux

package harness

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere an interrupted run may
// leave a server behind.
func setParentDeathSignal(*exec.Cmd) {}
