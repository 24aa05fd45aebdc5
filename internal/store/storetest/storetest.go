// Package storetest is the one conformance suite every store.Store
// implementation must pass. Each backend's test calls Run with a function
// that makes a fresh, empty, migrated store; the suite then checks every
// method's documented behaviour, including the atomicity promises, by
// attacking them with concurrent callers.
//
// Only behaviour promised in internal/store is asserted here, so a test
// failure on one backend is a bug in that backend or in the contract, never
// a difference callers are expected to live with.
package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// Run runs the suite. newStore must return an empty store with the current
// schema, and arrange (with t.Cleanup) to close and discard it; it is called
// once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},

		{"Account/RoundTrip", testAccountRoundTrip},
		{"Account/Duplicate", testAccountDuplicate},
		{"Account/NotFound", testAccountNotFound},
		{"Account/Update", testAccountUpdate},
		{"Account/UpdateFnError", testAccountUpdateFnError},
		{"Account/UpdateEmailTaken", testAccountUpdateEmailTaken},
		{"Account/UpdateIDChange", testAccountUpdateIDChange},
		{"Account/UpdateConcurrent", testAccountUpdateConcurrent},
		{"Account/List", testAccountList},
		{"Account/ListDefaultLimit", testAccountListDefaultLimit},
		{"Account/OwnedRecordsNeedAccount", testOwnedRecordsNeedAccount},

		{"Token/RoundTrip", testTokenRoundTrip},
		{"Token/Duplicate", testTokenDuplicate},
		{"Token/ConsumeRefusals", testTokenConsumeRefusals},
		{"Token/ConsumeConcurrent", testTokenConsumeConcurrent},
		{"Token/Delete", testTokenDelete},

		{"Session/RoundTrip", testSessionRoundTrip},
		{"Session/Duplicate", testSessionDuplicate},
		{"Session/Touch", testSessionTouch},
		{"Session/Update", testSessionUpdate},
		{"Session/List", testSessionList},
		{"Session/Revoke", testSessionRevoke},
		{"Session/RevokeAllExcept", testSessionRevokeAll},

		{"Device/RoundTrip", testDeviceRoundTrip},
		{"Device/Duplicate", testDeviceDuplicate},
		{"Device/Update", testDeviceUpdate},
		{"Device/List", testDeviceList},

		{"PendingSignIn/RoundTrip", testSignInRoundTrip},
		{"PendingSignIn/Duplicate", testSignInDuplicate},
		{"PendingSignIn/Update", testSignInUpdate},
		{"PendingSignIn/UpdateConcurrent", testSignInUpdateConcurrent},
		{"PendingSignIn/DeleteExpired", testSignInDeleteExpired},

		{"Audit/Append", testAuditAppend},
		{"Audit/BuildError", testAuditBuildError},
		{"Audit/SubMicrosecondTime", testAuditSubMicrosecond},
		{"Audit/AppendConcurrent", testAuditAppendConcurrent},
		{"Audit/List", testAuditList},

		{"Outbox/RoundTrip", testOutboxRoundTrip},
		{"Outbox/Claim", testOutboxClaim},
		{"Outbox/SentAndFailed", testOutboxSentAndFailed},
		{"Outbox/ClaimConcurrent", testOutboxClaimConcurrent},
		{"Outbox/List", testOutboxList},
		{"Outbox/DeleteBefore", testOutboxDeleteBefore},

		{"Tx/Commit", testTxCommit},
		{"Tx/Rollback", testTxRollback},
		{"Tx/Panic", testTxPanic},
		{"Tx/NestedUpdates", testTxNestedUpdates},
		{"Tx/ContinuesAfterConflict", testTxContinuesAfterConflict},
		{"Tx/ConcurrentTransfers", testTxConcurrent},
	}
	tests = append(tests, apiKeyTests()...)
	tests = append(tests, mfaTests()...)
	tests = append(tests, recoveryTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// Fixture time: in UTC, with microseconds (the precision stores keep).
var t0 = time.Date(2031, 5, 17, 9, 30, 15, 123456000, time.UTC)

// at returns t0+d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// elsewhere is a zone far from UTC: times given in it must come back as the
// same instant in UTC.
var elsewhere = time.FixedZone("UTC+05:45", 5*3600+45*60)

// hash returns a 32-byte value derived from s (a stand-in for a token hash).
func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// concurrency is how many goroutines the attack tests start.
const concurrency = 20

// race runs fn(i) for i in [0, n) on n goroutines released at once, and
// returns their errors indexed by i.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// equal fails the test unless got and want are deeply equal, naming the
// fields that differ. Times must match exactly, location included, so a time
// that comes back in another zone than UTC fails.
func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	if d := fieldDiff(reflect.ValueOf(got), reflect.ValueOf(want)); d != "" {
		t.Errorf("%s differs:\n%s", what, d)
		return
	}
	t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
}

func fieldDiff(g, w reflect.Value) string {
	if g.Kind() != reflect.Struct || g.Type() != w.Type() {
		return ""
	}
	var b strings.Builder
	for i := range g.NumField() {
		gf, wf := g.Field(i).Interface(), w.Field(i).Interface()
		if !reflect.DeepEqual(gf, wf) {
			fmt.Fprintf(&b, "  %s: got %s, want %s\n", g.Type().Field(i).Name, show(gf), show(wf))
		}
	}
	return b.String()
}

func show(v any) string {
	switch x := v.(type) {
	case time.Time:
		if x.IsZero() {
			return "zero time"
		}
		return x.Format(time.RFC3339Nano) + " (" + x.Location().String() + ")"
	case []byte:
		if x == nil {
			return "nil"
		}
		return fmt.Sprintf("%x", x)
	}
	return fmt.Sprintf("%#v", v)
}

// is fails the test unless errors.Is(err, target) (target nil: err nil).
func is(t *testing.T, what string, err, target error) {
	t.Helper()
	if target == nil {
		if err != nil {
			t.Fatalf("%s: unexpected error: %v", what, err)
		}
		return
	}
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// must fails the test on err.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
