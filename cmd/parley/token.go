package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/parleyhq/parley/signaling"
)

// mintToken is "parley token": it prints a signed token for /ws, made with
// PARLEY_AUTH_SECRET, for scripts and tests. A backend mints its own with
// the same format (docs/protocol.md, Authentication).
func mintToken(args []string, env func(string) string, out, errOut io.Writer) int {
	fs := flag.NewFlagSet("parley token", flag.ContinueOnError)
	fs.SetOutput(errOut)
	sub := fs.String("sub", "", "the subject (who the token is for)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	secret := env("PARLEY_AUTH_SECRET")
	if secret == "" {
		fmt.Fprintln(errOut, "parley token: set PARLEY_AUTH_SECRET (the same as the server's -auth-secret)")
		return 2
	}
	fmt.Fprintln(out, signaling.SignToken([]byte(secret), *sub, *ttl, time.Now()))
	return 0
}
