package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

// recoveryTests are the account-recovery cases of Run
// (store.RecoveryQueries), GetToken and Session.SignInFactor.
func recoveryTests() []struct {
	name string
	fn   func(t *testing.T, s store.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Recovery/RoundTrip", testRecoveryRoundTrip},
		{"Recovery/LargeDocument", testRecoveryLargeDocument},
		{"Recovery/Duplicate", testRecoveryDuplicate},
		{"Recovery/NotFound", testRecoveryNotFound},
		{"Recovery/List", testRecoveryList},
		{"Recovery/ListDefaultLimit", testRecoveryListDefaultLimit},
		{"Recovery/Update", testRecoveryUpdate},
		{"Recovery/UpdateUniqueFields", testRecoveryUpdateUnique},
		{"Recovery/ApproveConcurrent", testRecoveryApproveConcurrent},
		{"Recovery/ApproveSameStaffConcurrent", testRecoveryApproveSameStaff},
		{"Recovery/CancelRacesCompletion", testRecoveryCancelRacesCompletion},
		{"Recovery/NeedsAccount", testRecoveryNeedsAccount},
		{"Recovery/Rollback", testRecoveryRollback},

		{"Token/Get", testTokenGet},
		{"Session/SignInFactor", testSessionSignInFactor},
	}
}

// fullRecovery is a case with every field set: approved twice, then
// cancelled (no real case is rejected and cancelled and completed; the
// store does not care).
func fullRecovery(id, accountID string) store.RecoveryCase {
	return store.RecoveryCase{
		ID:               id,
		Reference:        "RC-" + strings.ToUpper(id),
		AccountID:        accountID,
		State:            store.RecoveryCancelled,
		Via:              "password",
		StatusTokenHash:  hash("status " + id),
		Answers:          `{"signup_year":"2024","last_deposit":"EUR 250","api_key_name":"trading bot"}`,
		DocumentType:     "image/jpeg",
		DocumentSize:     5_000_000_123, // beyond 32 bits
		Document:         []byte("sealed document of " + id + "\x00\xff"),
		IP:               "2001:db8::42",
		UserAgent:        "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
		FirstApproverID:  "staff-a",
		FirstApprovedAt:  at(time.Hour),
		SecondApproverID: "staff-b",
		SecondApprovedAt: at(2 * time.Hour),
		RejectedBy:       "staff-c",
		RejectedAt:       at(3 * time.Hour),
		RejectReason:     "the document does not match",
		WaitUntil:        at(74 * time.Hour),
		NextNoticeAt:     at(26 * time.Hour),
		CancelledAt:      at(30 * time.Hour),
		CancelledBy:      "link",
		CompletedAt:      at(80 * time.Hour),
		CreatedAt:        t0,
		UpdatedAt:        at(30 * time.Hour),
	}
}

// openRecovery is a fresh case, opened at t0+created.
func openRecovery(id, accountID string, created time.Duration) store.RecoveryCase {
	return store.RecoveryCase{
		ID:              id,
		Reference:       "RC-" + strings.ToUpper(id),
		AccountID:       accountID,
		State:           store.RecoveryOpen,
		Via:             "email",
		StatusTokenHash: hash("status " + id),
		Answers:         `{}`,
		DocumentType:    "application/pdf",
		DocumentSize:    3,
		Document:        []byte("pdf"),
		CreatedAt:       at(created),
		UpdatedAt:       at(created),
	}
}

func mkRecovery(t *testing.T, q store.Queries, c store.RecoveryCase) {
	t.Helper()
	must(t, "CreateRecoveryCase "+c.ID, q.CreateRecoveryCase(context.Background(), c))
}

func getRecovery(t *testing.T, q store.Queries, id string) store.RecoveryCase {
	t.Helper()
	c, err := q.GetRecoveryCase(context.Background(), id)
	must(t, "GetRecoveryCase "+id, err)
	return c
}

func testRecoveryRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	zoned := fullRecovery("rc-zoned", "acc-1")
	zoned.FirstApprovedAt = zoned.FirstApprovedAt.In(elsewhere)
	zoned.WaitUntil = zoned.WaitUntil.In(elsewhere)
	zoned.CreatedAt = zoned.CreatedAt.In(elsewhere)
	sparse := store.RecoveryCase{ID: "rc-sparse", Reference: "RC-SPARSE", AccountID: "acc-1",
		StatusTokenHash: hash("status rc-sparse")}
	for _, tc := range []struct {
		name       string
		give, want store.RecoveryCase
	}{
		{"every field", fullRecovery("rc-full", "acc-1"), fullRecovery("rc-full", "acc-1")},
		{"zero times, empty strings, no document", sparse, sparse},
		{"just opened", openRecovery("rc-open", "acc-1", time.Minute), openRecovery("rc-open", "acc-1", time.Minute)},
		{"zoned", zoned, fullRecovery("rc-zoned", "acc-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mkRecovery(t, s, tc.give)
			equal(t, "GetRecoveryCase", getRecovery(t, s, tc.give.ID), tc.want)
			got, err := s.GetRecoveryCaseByStatusToken(ctx, tc.give.StatusTokenHash)
			must(t, "GetRecoveryCaseByStatusToken", err)
			equal(t, "GetRecoveryCaseByStatusToken", got, tc.want)
		})
	}
}

// testRecoveryLargeDocument: a 10 MiB document (the upload limit) comes
// back byte for byte from both getters, and lists leave it out.
func testRecoveryLargeDocument(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	doc := make([]byte, 10<<20)
	for i := range doc {
		doc[i] = byte(i*7 + i>>11)
	}
	c := openRecovery("rc-big", "acc-1", 0)
	c.Document, c.DocumentSize, c.DocumentType = doc, int64(len(doc)), "image/png"
	mkRecovery(t, s, c)
	got := getRecovery(t, s, "rc-big")
	if !bytes.Equal(got.Document, doc) {
		t.Fatalf("GetRecoveryCase: document of %d bytes differs from the %d stored", len(got.Document), len(doc))
	}
	got.Document = nil
	want := c
	want.Document = nil
	equal(t, "case", got, want)
	byToken, err := s.GetRecoveryCaseByStatusToken(ctx, c.StatusTokenHash)
	must(t, "GetRecoveryCaseByStatusToken", err)
	if !bytes.Equal(byToken.Document, doc) {
		t.Fatalf("GetRecoveryCaseByStatusToken: document of %d bytes differs", len(byToken.Document))
	}
	list, err := s.ListRecoveryCases(ctx, store.RecoveryCaseFilter{})
	must(t, "ListRecoveryCases", err)
	if len(list) != 1 {
		t.Fatalf("ListRecoveryCases returned %d cases, want 1", len(list))
	}
	equal(t, "listed case", list[0], want)
}

func testRecoveryDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	first := openRecovery("rc-1", "acc-1", 0)
	mkRecovery(t, s, first)

	dupID := openRecovery("rc-1", "acc-1", time.Minute)
	dupID.Reference, dupID.StatusTokenHash = "RC-OTHER-1", hash("other 1")
	dupRef := openRecovery("rc-2", "acc-1", time.Minute)
	dupRef.Reference = first.Reference
	dupToken := openRecovery("rc-3", "acc-1", time.Minute)
	dupToken.StatusTokenHash = first.StatusTokenHash
	for name, c := range map[string]store.RecoveryCase{"same ID": dupID, "same reference": dupRef, "same status token": dupToken} {
		is(t, name, s.CreateRecoveryCase(ctx, c), store.ErrAlreadyExists)
	}
	equal(t, "original", getRecovery(t, s, "rc-1"), first)
	// Inside a transaction the refusal is an answer: the transaction goes on.
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		is(t, "same reference in tx", tx.CreateRecoveryCase(ctx, dupRef), store.ErrAlreadyExists)
		is(t, "same status token in tx", tx.CreateRecoveryCase(ctx, dupToken), store.ErrAlreadyExists)
		return tx.CreateRecoveryCase(ctx, openRecovery("rc-4", "acc-1", time.Hour))
	}))
	getRecovery(t, s, "rc-4")
	for _, id := range []string{"rc-2", "rc-3"} {
		_, err := s.GetRecoveryCase(ctx, id)
		is(t, "refused "+id, err, store.ErrNotFound)
	}
}

func testRecoveryNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkRecovery(t, s, openRecovery("rc-1", "acc-1", 0))
	_, err := s.GetRecoveryCase(ctx, "rc-9")
	is(t, "GetRecoveryCase", err, store.ErrNotFound)
	_, err = s.GetRecoveryCase(ctx, "RC-RC-1")
	is(t, "GetRecoveryCase by reference", err, store.ErrNotFound)
	_, err = s.GetRecoveryCaseByStatusToken(ctx, hash("status rc-9"))
	is(t, "unknown status token", err, store.ErrNotFound)
	_, err = s.GetRecoveryCaseByStatusToken(ctx, hash("status rc-1")[:16])
	is(t, "status token prefix", err, store.ErrNotFound)
	_, err = s.GetRecoveryCaseByStatusToken(ctx, nil)
	is(t, "no status token", err, store.ErrNotFound)
	_, err = s.UpdateRecoveryCase(ctx, "rc-9", func(*store.RecoveryCase) error {
		t.Error("fn called for a missing case")
		return nil
	})
	is(t, "UpdateRecoveryCase", err, store.ErrNotFound)
}

// caseIDs returns the IDs of cs, in order.
func caseIDs(cs []store.RecoveryCase) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func testRecoveryList(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	type spec struct {
		id, account string
		state       store.RecoveryState
		created     time.Duration // -1: zero CreatedAt
	}
	for _, sp := range []spec{
		{"rc-a", "acc-1", store.RecoveryOpen, 1 * time.Hour},
		{"rc-b", "acc-1", store.RecoveryWaiting, 3 * time.Hour},
		{"rc-c", "acc-2", store.RecoveryOpen, 2 * time.Hour},
		{"rc-d", "acc-1", store.RecoveryCompleted, 3 * time.Hour}, // same time as rc-b: ID decides
		{"rc-e", "acc-2", store.RecoveryRejected, 5 * time.Hour},
		{"rc-f", "acc-1", store.RecoveryOpen, -1},
		{"rc-g", "acc-2", store.RecoveryCancelled, 4 * time.Hour},
	} {
		c := openRecovery(sp.id, sp.account, sp.created)
		c.State = sp.state
		if sp.created < 0 {
			c.CreatedAt = time.Time{}
		} else {
			c.CreatedAt = c.CreatedAt.In(elsewhere)
		}
		mkRecovery(t, s, c)
	}
	for _, tc := range []struct {
		name string
		f    store.RecoveryCaseFilter
		want []string
	}{
		{"all, newest first, zero time last", store.RecoveryCaseFilter{},
			[]string{"rc-e", "rc-g", "rc-d", "rc-b", "rc-c", "rc-a", "rc-f"}},
		{"account", store.RecoveryCaseFilter{AccountID: "acc-1"}, []string{"rc-d", "rc-b", "rc-a", "rc-f"}},
		{"one state", store.RecoveryCaseFilter{States: []store.RecoveryState{store.RecoveryOpen}},
			[]string{"rc-c", "rc-a", "rc-f"}},
		{"states", store.RecoveryCaseFilter{States: []store.RecoveryState{store.RecoveryWaiting, store.RecoveryRejected, store.RecoveryCancelled}},
			[]string{"rc-e", "rc-g", "rc-b"}},
		{"account and states", store.RecoveryCaseFilter{AccountID: "acc-2",
			States: []store.RecoveryState{store.RecoveryOpen, store.RecoveryWaiting}}, []string{"rc-c"}},
		{"limit", store.RecoveryCaseFilter{Limit: 3}, []string{"rc-e", "rc-g", "rc-d"}},
		{"account, states and limit", store.RecoveryCaseFilter{AccountID: "acc-1",
			States: []store.RecoveryState{store.RecoveryOpen, store.RecoveryCompleted}, Limit: 2}, []string{"rc-d", "rc-a"}},
		{"unknown account", store.RecoveryCaseFilter{AccountID: "acc-9"}, nil},
		{"no case in that state", store.RecoveryCaseFilter{States: []store.RecoveryState{"nonesuch"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRecoveryCases(ctx, tc.f)
			must(t, "ListRecoveryCases", err)
			if !slices.Equal(caseIDs(got), tc.want) {
				t.Fatalf("ListRecoveryCases(%+v) = %q, want %q", tc.f, caseIDs(got), tc.want)
			}
			for _, c := range got {
				if c.Document != nil {
					t.Errorf("listed case %s carries its document", c.ID)
				}
				want := getRecovery(t, s, c.ID)
				want.Document = nil
				equal(t, "listed "+c.ID, c, want)
			}
		})
	}
}

func testRecoveryListDefaultLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	const n = 103
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		for i := range n {
			if err := tx.CreateRecoveryCase(ctx, openRecovery(fmt.Sprintf("rc-%03d", i), "acc-1", time.Duration(i)*time.Second)); err != nil {
				return err
			}
		}
		return nil
	}))
	got, err := s.ListRecoveryCases(ctx, store.RecoveryCaseFilter{})
	must(t, "ListRecoveryCases", err)
	if len(got) != 100 || got[0].ID != fmt.Sprintf("rc-%03d", n-1) || got[99].ID != fmt.Sprintf("rc-%03d", n-100) {
		t.Fatalf("default list: %d cases, %q first", len(got), caseIDs(got[:min(1, len(got))]))
	}
	got, err = s.ListRecoveryCases(ctx, store.RecoveryCaseFilter{Limit: 1000})
	must(t, "ListRecoveryCases", err)
	if len(got) != n {
		t.Fatalf("Limit 1000: %d cases, want %d", len(got), n)
	}
}

func testRecoveryUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	orig := openRecovery("rc-1", "acc-1", 0)
	mkRecovery(t, s, orig)

	want := fullRecovery("rc-1", "acc-2")
	got, err := s.UpdateRecoveryCase(ctx, "rc-1", func(c *store.RecoveryCase) error {
		equal(t, "fn sees", *c, orig)
		*c = fullRecovery("rc-1", "acc-2")
		c.CancelledAt = c.CancelledAt.In(elsewhere)
		return nil
	})
	must(t, "UpdateRecoveryCase", err)
	equal(t, "returned", got, want)
	equal(t, "stored", getRecovery(t, s, "rc-1"), want)

	// Back to the sparse shape: every field can be cleared, the document
	// too.
	sparse := store.RecoveryCase{ID: "rc-1", Reference: "RC-SPARSE", AccountID: "acc-1", StatusTokenHash: hash("sparse")}
	got, err = s.UpdateRecoveryCase(ctx, "rc-1", func(c *store.RecoveryCase) error {
		*c = sparse
		return nil
	})
	must(t, "UpdateRecoveryCase (clear)", err)
	equal(t, "cleared", got, sparse)
	equal(t, "stored cleared", getRecovery(t, s, "rc-1"), sparse)
	c, err := s.GetRecoveryCaseByStatusToken(ctx, hash("sparse"))
	must(t, "new status token", err)
	equal(t, "by new status token", c, sparse)
	_, err = s.GetRecoveryCaseByStatusToken(ctx, want.StatusTokenHash)
	is(t, "old status token", err, store.ErrNotFound)

	// fn's error comes back unchanged and nothing is written.
	_, err = s.UpdateRecoveryCase(ctx, "rc-1", func(c *store.RecoveryCase) error {
		c.State = store.RecoveryCompleted
		c.CompletedAt = at(time.Hour)
		c.Document = []byte("x")
		return errStop
	})
	if err != errStop {
		t.Fatalf("UpdateRecoveryCase returned %v, want fn's error unchanged", err)
	}
	equal(t, "after a refused update", getRecovery(t, s, "rc-1"), sparse)

	// fn may not change the ID.
	_, err = s.UpdateRecoveryCase(ctx, "rc-1", func(c *store.RecoveryCase) error {
		c.ID = "rc-2"
		c.State = store.RecoveryWaiting
		return nil
	})
	if err == nil {
		t.Fatal("UpdateRecoveryCase changed the case's ID")
	}
	equal(t, "after a refused ID change", getRecovery(t, s, "rc-1"), sparse)
	_, err = s.GetRecoveryCase(ctx, "rc-2")
	is(t, "renamed case", err, store.ErrNotFound)
}

// testRecoveryUpdateUnique: moving a case onto another's reference or
// status token is refused with ErrAlreadyExists, also inside a transaction
// that then goes on.
func testRecoveryUpdateUnique(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	one, two := openRecovery("rc-1", "acc-1", 0), openRecovery("rc-2", "acc-1", time.Minute)
	mkRecovery(t, s, one)
	mkRecovery(t, s, two)
	takeRef := func(c *store.RecoveryCase) error { c.Reference = one.Reference; return nil }
	takeToken := func(c *store.RecoveryCase) error { c.StatusTokenHash = one.StatusTokenHash; return nil }
	_, err := s.UpdateRecoveryCase(ctx, "rc-2", takeRef)
	is(t, "taken reference", err, store.ErrAlreadyExists)
	_, err = s.UpdateRecoveryCase(ctx, "rc-2", takeToken)
	is(t, "taken status token", err, store.ErrAlreadyExists)
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		_, err := tx.UpdateRecoveryCase(ctx, "rc-2", takeRef)
		is(t, "taken reference in tx", err, store.ErrAlreadyExists)
		_, err = tx.UpdateRecoveryCase(ctx, "rc-2", takeToken)
		is(t, "taken status token in tx", err, store.ErrAlreadyExists)
		_, err = tx.UpdateRecoveryCase(ctx, "rc-2", func(c *store.RecoveryCase) error {
			c.State = store.RecoveryRejected
			return nil
		})
		return err
	}))
	want := two
	want.State = store.RecoveryRejected
	equal(t, "rc-2", getRecovery(t, s, "rc-2"), want)
	equal(t, "rc-1", getRecovery(t, s, "rc-1"), one)
}

var (
	errNotOpen   = errors.New("storetest: case not open")
	errSameStaff = errors.New("storetest: same staff member")
)

// approve is the four-eyes rule internal/recovery puts in
// UpdateRecoveryCase's fn: the first approval fills the first slot; a
// second, by someone else, fills the second and starts the waiting period.
func approve(staffID string, now time.Time) func(c *store.RecoveryCase) error {
	return func(c *store.RecoveryCase) error {
		if c.State != store.RecoveryOpen {
			return errNotOpen
		}
		switch {
		case c.FirstApproverID == "":
			c.FirstApproverID, c.FirstApprovedAt = staffID, now
		case c.FirstApproverID == staffID:
			return errSameStaff
		default:
			c.SecondApproverID, c.SecondApprovedAt = staffID, now
			c.State = store.RecoveryWaiting
			c.WaitUntil = now.Add(72 * time.Hour)
			c.NextNoticeAt = now.Add(24 * time.Hour)
		}
		c.UpdatedAt = now
		return nil
	}
}

// approvers is how many staff members try to approve one case at once.
const approvers = 8

// testRecoveryApproveConcurrent: eight staff members approve one case at
// once. Exactly two approvals are recorded, by two different people, the
// case is waiting, and each recorded approval is whole (its time is its
// approver's). Several rounds give an unserialised store several chances.
func testRecoveryApproveConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	const rounds = 5
	for round := range rounds {
		id := fmt.Sprint("rc-", round)
		mkRecovery(t, s, openRecovery(id, "acc-1", time.Duration(round)*time.Minute))
		staff := func(i int) string { return fmt.Sprint("staff-", i) }
		when := func(i int) time.Time { return at(time.Duration(i+1) * time.Second) }
		errs := race(approvers, func(i int) error {
			_, err := s.UpdateRecoveryCase(ctx, id, approve(staff(i), when(i)))
			return err
		})
		var won []string
		for i, err := range errs {
			switch {
			case err == nil:
				won = append(won, staff(i))
			case err == errNotOpen:
			default:
				t.Errorf("round %d, approver %d: %v", round, i, err)
			}
		}
		if len(won) != 2 {
			t.Fatalf("round %d: %d of %d concurrent approvals succeeded (%q), want exactly 2", round, len(won), approvers, won)
		}
		c := getRecovery(t, s, id)
		if c.State != store.RecoveryWaiting {
			t.Errorf("round %d: state %q after two approvals, want waiting", round, c.State)
		}
		if c.FirstApproverID == "" || c.FirstApproverID == c.SecondApproverID {
			t.Errorf("round %d: approvers %q and %q, want two different people", round, c.FirstApproverID, c.SecondApproverID)
		}
		recorded := []string{c.FirstApproverID, c.SecondApproverID}
		slices.Sort(recorded)
		slices.Sort(won)
		if !slices.Equal(recorded, won) {
			t.Errorf("round %d: recorded approvers %q, but the successful callers were %q (a lost update)", round, recorded, won)
		}
		index := func(staffID string) int {
			for i := range approvers {
				if staff(i) == staffID {
					return i
				}
			}
			t.Fatalf("round %d: unknown approver %q", round, staffID)
			return 0
		}
		first, second := index(c.FirstApproverID), index(c.SecondApproverID)
		if !c.FirstApprovedAt.Equal(when(first)) || !c.SecondApprovedAt.Equal(when(second)) ||
			!c.WaitUntil.Equal(when(second).Add(72*time.Hour)) || !c.UpdatedAt.Equal(when(second)) {
			t.Errorf("round %d: a recorded approval is torn: %+v", round, c)
		}
	}
}

// testRecoveryApproveSameStaff: one staff member's approval sent eight
// times at once counts once: the second slot stays empty.
func testRecoveryApproveSameStaff(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkRecovery(t, s, openRecovery("rc-1", "acc-1", 0))
	errs := race(approvers, func(i int) error {
		_, err := s.UpdateRecoveryCase(ctx, "rc-1", approve("staff-a", at(time.Duration(i+1)*time.Second)))
		return err
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case err == errSameStaff:
		default:
			t.Errorf("approver %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent approvals by one person succeeded, want exactly 1", wins, approvers)
	}
	c := getRecovery(t, s, "rc-1")
	if c.State != store.RecoveryOpen || c.FirstApproverID != "staff-a" || c.SecondApproverID != "" || !c.SecondApprovedAt.IsZero() {
		t.Fatalf("after one person's repeated approvals: state %q, approvers %q and %q", c.State, c.FirstApproverID, c.SecondApproverID)
	}
	// A second person completes the review; a third is refused.
	_, err := s.UpdateRecoveryCase(ctx, "rc-1", approve("staff-b", at(time.Minute)))
	must(t, "second approval", err)
	_, err = s.UpdateRecoveryCase(ctx, "rc-1", approve("staff-c", at(2*time.Minute)))
	if err != errNotOpen {
		t.Fatalf("third approval: %v, want refusal", err)
	}
}

// testRecoveryCancelRacesCompletion: the owner's cancellations and the
// worker's completions race on a waiting case; exactly one transition
// wins and the case ends in its state.
func testRecoveryCancelRacesCompletion(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	c := openRecovery("rc-1", "acc-1", 0)
	c.State, c.FirstApproverID, c.SecondApproverID = store.RecoveryWaiting, "staff-a", "staff-b"
	mkRecovery(t, s, c)
	errs := race(approvers, func(i int) error {
		_, err := s.UpdateRecoveryCase(ctx, "rc-1", func(c *store.RecoveryCase) error {
			if c.State != store.RecoveryWaiting {
				return errNotOpen
			}
			now := at(time.Duration(i+1) * time.Second)
			if i%2 == 0 {
				c.State, c.CancelledAt, c.CancelledBy = store.RecoveryCancelled, now, "link"
			} else {
				c.State, c.CompletedAt = store.RecoveryCompleted, now
			}
			c.UpdatedAt = now
			return nil
		})
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("transitions %d and %d both succeeded", winner, i)
			}
			winner = i
		case err == errNotOpen:
		default:
			t.Errorf("transition %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no transition succeeded")
	}
	got := getRecovery(t, s, "rc-1")
	now := at(time.Duration(winner+1) * time.Second)
	if winner%2 == 0 {
		if got.State != store.RecoveryCancelled || !got.CancelledAt.Equal(now) || !got.CompletedAt.IsZero() {
			t.Fatalf("cancellation %d won, but the case is %+v", winner, got)
		}
	} else if got.State != store.RecoveryCompleted || !got.CompletedAt.Equal(now) || !got.CancelledAt.IsZero() {
		t.Fatalf("completion %d won, but the case is %+v", winner, got)
	}
}

// testRecoveryNeedsAccount: a case belongs to an account that must exist
// when the write commits (inside InTx it may come after the case).
func testRecoveryNeedsAccount(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateRecoveryCase(ctx, openRecovery("rc-1", "ghost", 0)); err == nil {
		t.Error("created a recovery case for a missing account")
	}
	if err := s.InTx(ctx, func(tx store.Queries) error {
		return tx.CreateRecoveryCase(ctx, openRecovery("rc-1", "ghost", 0))
	}); err == nil {
		t.Error("committed a recovery case for a missing account")
	}
	must(t, "InTx (case, then its account)", s.InTx(ctx, func(tx store.Queries) error {
		if err := tx.CreateRecoveryCase(ctx, openRecovery("rc-1", "ghost", 0)); err != nil {
			return err
		}
		return tx.CreateAccount(ctx, account("ghost", "ghost@example.com"))
	}))
	// Nor may an update move a case to a missing account.
	_, err := s.UpdateRecoveryCase(ctx, "rc-1", func(c *store.RecoveryCase) error {
		c.AccountID = "ghost-2"
		return nil
	})
	if err == nil {
		t.Error("moved a recovery case to a missing account")
	}
	if got := getRecovery(t, s, "rc-1"); got.AccountID != "ghost" {
		t.Errorf("AccountID = %q after a refused move", got.AccountID)
	}
}

// testRecoveryRollback: writes in a transaction that fails are undone.
func testRecoveryRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	orig := openRecovery("rc-1", "acc-1", 0)
	mkRecovery(t, s, orig)
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Queries) error {
		mkRecovery(t, tx, openRecovery("rc-2", "acc-1", time.Minute))
		_, err := tx.UpdateRecoveryCase(ctx, "rc-1", approve("staff-a", at(time.Minute)))
		must(t, "approve in tx", err)
		if got := getRecovery(t, tx, "rc-1"); got.FirstApproverID != "staff-a" {
			t.Errorf("the transaction does not see its own approval: %+v", got)
		}
		return boom
	})
	if err != boom {
		t.Fatalf("InTx: %v", err)
	}
	equal(t, "rc-1 after rollback", getRecovery(t, s, "rc-1"), orig)
	_, err = s.GetRecoveryCase(ctx, "rc-2")
	is(t, "rc-2 after rollback", err, store.ErrNotFound)
}

// testTokenGet: GetToken returns a token as stored, whatever its state,
// and changes nothing.
func testTokenGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	fresh := token("fresh", "acc-1", store.TokenRecoveryCancel)
	fresh.Subject = "rc-1"
	fresh.CreatedAt = fresh.CreatedAt.In(elsewhere)
	used := token("used", "acc-1", store.TokenPasswordReset)
	expired := token("expired", "acc-1", store.TokenPasswordReset)
	expired.ExpiresAt = t0.Add(-time.Hour)
	for _, tok := range []store.Token{fresh, used, expired} {
		must(t, "CreateToken", s.CreateToken(ctx, tok))
	}
	_, err := s.ConsumeToken(ctx, used.Kind, used.Hash, at(time.Minute))
	must(t, "ConsumeToken", err)
	fresh.CreatedAt = fresh.CreatedAt.UTC()
	used.UsedAt = at(time.Minute)

	for _, want := range []store.Token{fresh, used, expired} {
		got, err := s.GetToken(ctx, want.Kind, want.Hash)
		must(t, "GetToken", err)
		equal(t, "token", got, want)
	}
	_, err = s.GetToken(ctx, store.TokenPasswordReset, fresh.Hash)
	is(t, "other kind", err, store.ErrNotFound)
	_, err = s.GetToken(ctx, store.TokenRecoveryCancel, hash("unknown"))
	is(t, "unknown hash", err, store.ErrNotFound)
	_, err = s.GetToken(ctx, store.TokenRecoveryCancel, fresh.Hash[:16])
	is(t, "hash prefix", err, store.ErrNotFound)

	// Looking did not use it up: ConsumeToken still decides.
	got, err := s.ConsumeToken(ctx, fresh.Kind, fresh.Hash, at(time.Minute))
	must(t, "ConsumeToken after GetToken", err)
	if !got.UsedAt.Equal(at(time.Minute)) {
		t.Errorf("UsedAt = %v", got.UsedAt)
	}
	_, err = s.ConsumeToken(ctx, expired.Kind, expired.Hash, t0)
	is(t, "expired", err, store.ErrTokenExpired)
	var inTx store.Token
	must(t, "InTx", s.InTx(ctx, func(tx store.Queries) error {
		var err error
		inTx, err = tx.GetToken(ctx, fresh.Kind, fresh.Hash)
		return err
	}))
	fresh.UsedAt = at(time.Minute)
	equal(t, "used token in tx", inTx, fresh)
}

// testSessionSignInFactor: each factor round-trips through create, read,
// update and list.
func testSessionSignInFactor(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	for i, f := range []string{"", "webauthn", "totp", "sms", "backup_code", "passkey"} {
		ss := session(fmt.Sprint("s-", i), "acc-1", time.Duration(i)*time.Second)
		ss.SignInFactor = f
		mkSession(t, s, ss)
		equal(t, "session "+f, getSession(t, s, ss.ID), ss)
	}
	got, err := s.UpdateSession(ctx, "s-0", func(ss *store.Session) error {
		if ss.SignInFactor != "" {
			t.Errorf("fn sees SignInFactor %q", ss.SignInFactor)
		}
		ss.SignInFactor = "passkey"
		return nil
	})
	must(t, "UpdateSession", err)
	if got.SignInFactor != "passkey" || getSession(t, s, "s-0").SignInFactor != "passkey" {
		t.Errorf("SignInFactor after update: returned %q, stored %q", got.SignInFactor, getSession(t, s, "s-0").SignInFactor)
	}
	list, err := s.ListSessions(ctx, "acc-1", t0)
	must(t, "ListSessions", err)
	factors := map[string]string{}
	for _, ss := range list {
		factors[ss.ID] = ss.SignInFactor
	}
	if factors["s-1"] != "webauthn" || factors["s-5"] != "passkey" || factors["s-0"] != "passkey" {
		t.Errorf("listed factors: %v", factors)
	}
}
