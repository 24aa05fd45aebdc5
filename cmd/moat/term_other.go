//go:build !linux

package main

import (
	"errors"
	"os"
)

// Prompting without echo is implemented for Linux; elsewhere use
// --password-stdin.
func isTerminal(*os.File) bool { return false }

func readNoEcho(*os.File) (string, error) {
	return "", errors.New("cannot prompt for a password here; use --password-stdin")
}
