package mfa_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/account"
	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/mfa"
	"github.com/moat-dev/moat/internal/mfa/mfatest"
	"github.com/moat-dev/moat/internal/mfa/totp"
	"github.com/moat-dev/moat/internal/mfa/webauthn"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/secrets"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/sqlite"
)

// Enrol an authenticator app, then use it as the second factor at sign-in.
func ExampleService_ConfirmTOTP() {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	box, _ := secrets.NewBox(bytes.Repeat([]byte{1}, 32), rand.Reader)
	cfg := mfa.DefaultConfig()
	cfg.WebAuthn = webauthn.Config{RPID: "localhost", Origins: []string{"http://localhost:8080"}}
	db, _ := sqlite.OpenAndMigrate(ctx, ":memory:") // the server's store; factors live next to accounts
	defer db.Close()
	svc, _ := mfa.New(cfg, mfa.Deps{
		Store: db, Clock: clk, Rand: rand.Reader, Box: box,
		HashKey: bytes.Repeat([]byte{2}, 32), Counter: ratelimit.NewMemory(clk),
		Recorder: mfatest.NewRecorder(clk), // in the server: audit log and an e-mail to the owner
	})
	me := account.Principal{Account: store.Account{ID: "acct-1", Email: "alice@example.com"}}
	_ = db.CreateAccount(ctx, me.Account)

	en, _ := svc.BeginTOTP(ctx, me) // show en.QRCodePNG and en.ManualKey
	seed, _ := totp.ParseSecret(en.ManualKey)
	phone := func() string { return totp.Code(seed, totp.Step(clk.Now())) } // the app

	backupCodes, err := svc.ConfirmTOTP(ctx, me, phone(), account.Client{})
	fmt.Println(len(backupCodes), "backup codes to show once;", err)

	clk.Advance(time.Minute)
	var factor account.Factor = svc.Factors()[1] // "totp"; register all with account.Service
	code := phone()
	fmt.Println(factor.Name(), factor.Verify(ctx, "acct-1", code))
	fmt.Println(apperr.CodeOf(factor.Verify(ctx, "acct-1", code)))
	// Output:
	// 10 backup codes to show once; <nil>
	// totp <nil>
	// token_used
}
