package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/store"
)

func fullDevice(id, accountID string) store.Device {
	return store.Device{
		ID:         id,
		AccountID:  accountID,
		TokenHash:  hash("device " + id),
		Name:       "Firefox on Linux",
		LastIP:     "203.0.113.9",
		CreatedAt:  t0,
		ApprovedAt: at(time.Minute),
		LastSeenAt: at(time.Hour),
	}
}

func testDeviceRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	zoned := fullDevice("d-zoned", "acc-1")
	zoned.ApprovedAt = zoned.ApprovedAt.In(elsewhere)
	for _, tc := range []struct {
		name       string
		give, want store.Device
	}{
		{"every field", fullDevice("d-full", "acc-1"), fullDevice("d-full", "acc-1")},
		{"not approved, never seen", store.Device{ID: "d-sparse", AccountID: "acc-1", TokenHash: hash("device d-sparse")},
			store.Device{ID: "d-sparse", AccountID: "acc-1", TokenHash: hash("device d-sparse")}},
		{"zoned", zoned, fullDevice("d-zoned", "acc-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, "CreateDevice", s.CreateDevice(ctx, tc.give))
			got, err := s.GetDevice(ctx, tc.give.ID)
			must(t, "GetDevice", err)
			equal(t, "GetDevice", got, tc.want)
			got, err = s.GetDeviceByTokenHash(ctx, tc.give.AccountID, tc.give.TokenHash)
			must(t, "GetDeviceByTokenHash", err)
			equal(t, "GetDeviceByTokenHash", got, tc.want)
		})
	}
	_, err := s.GetDevice(ctx, "d-none")
	is(t, "GetDevice unknown", err, store.ErrNotFound)
	_, err = s.GetDeviceByTokenHash(ctx, "acc-1", hash("unknown"))
	is(t, "GetDeviceByTokenHash unknown", err, store.ErrNotFound)
	// A device cookie is only good for the account it belongs to.
	_, err = s.GetDeviceByTokenHash(ctx, "acc-2", hash("device d-full"))
	is(t, "GetDeviceByTokenHash of another account", err, store.ErrNotFound)
}

func testDeviceDuplicate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	d := fullDevice("d-1", "acc-1")
	must(t, "CreateDevice", s.CreateDevice(ctx, d))

	sameID := fullDevice("d-1", "acc-2")
	is(t, "same ID", s.CreateDevice(ctx, sameID), store.ErrAlreadyExists)
	sameToken := fullDevice("d-2", "acc-1")
	sameToken.TokenHash = d.TokenHash
	is(t, "same account and token", s.CreateDevice(ctx, sameToken), store.ErrAlreadyExists)

	// One browser (one device cookie) may sign in to several accounts.
	shared := fullDevice("d-3", "acc-2")
	shared.TokenHash = d.TokenHash
	must(t, "same token, other account", s.CreateDevice(ctx, shared))
	got, err := s.GetDeviceByTokenHash(ctx, "acc-1", d.TokenHash)
	must(t, "GetDeviceByTokenHash", err)
	equal(t, "acc-1's device", got, d)
	got, err = s.GetDeviceByTokenHash(ctx, "acc-2", d.TokenHash)
	must(t, "GetDeviceByTokenHash", err)
	equal(t, "acc-2's device", got, shared)
}

func testDeviceUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	orig := store.Device{ID: "d-1", AccountID: "acc-1", TokenHash: hash("device d-1"), Name: "new device", CreatedAt: t0}
	must(t, "CreateDevice", s.CreateDevice(ctx, orig))

	want := fullDevice("d-1", "acc-1")
	got, err := s.UpdateDevice(ctx, "d-1", func(d *store.Device) error {
		equal(t, "fn sees", *d, orig)
		*d = want
		return nil
	})
	must(t, "UpdateDevice", err)
	equal(t, "UpdateDevice result", got, want)
	got, err = s.GetDevice(ctx, "d-1")
	must(t, "GetDevice", err)
	equal(t, "stored", got, want)

	refuse := errors.New("code mismatch")
	_, err = s.UpdateDevice(ctx, "d-1", func(d *store.Device) error {
		d.ApprovedAt = time.Time{}
		d.Name = "changed"
		return refuse
	})
	if err != refuse {
		t.Fatalf("UpdateDevice returned %v, want fn's error unchanged", err)
	}
	got, err = s.GetDevice(ctx, "d-1")
	must(t, "GetDevice", err)
	equal(t, "after refused update", got, want)

	_, err = s.UpdateDevice(ctx, "d-9", func(*store.Device) error { return nil })
	is(t, "unknown device", err, store.ErrNotFound)
}

func testDeviceList(t *testing.T, s store.Store) {
	ctx := context.Background()
	mkAccount(t, s, "acc-1", "one@example.com")
	mkAccount(t, s, "acc-2", "two@example.com")
	dev := func(id, account string, seen time.Duration) store.Device {
		d := fullDevice(id, account)
		d.LastSeenAt = at(seen)
		return d
	}
	recent := dev("d-recent", "acc-1", 3*time.Hour)
	older := dev("d-older", "acc-1", 2*time.Hour)
	oldest := dev("d-oldest", "acc-1", time.Hour)
	never := dev("d-never", "acc-1", 0)
	never.LastSeenAt = time.Time{}
	neverUndated := dev("d-never-undated", "acc-1", 0)
	neverUndated.LastSeenAt, neverUndated.CreatedAt = time.Time{}, time.Time{}
	other := dev("d-other", "acc-2", 4*time.Hour)
	for _, d := range []store.Device{older, neverUndated, never, other, recent, oldest} {
		must(t, "CreateDevice", s.CreateDevice(ctx, d))
	}
	got, err := s.ListDevices(ctx, "acc-1")
	must(t, "ListDevices", err)
	equal(t, "most recently seen first, never seen last", got, []store.Device{recent, older, oldest, never, neverUndated})
	got, err = s.ListDevices(ctx, "acc-3")
	must(t, "ListDevices (none)", err)
	if len(got) != 0 {
		t.Errorf("ListDevices of an account without devices = %+v", got)
	}
}
