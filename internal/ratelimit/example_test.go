package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/ratelimit"
)

// A sign-in throttle: count failures per IP in 15-minute windows.
func ExampleMemory() {
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	var c ratelimit.Counter = ratelimit.NewMemory(clk)
	ctx := context.Background()
	for range 3 {
		c.Incr(ctx, "signin-fail:ip:198.51.100.7", 1, 15*time.Minute)
	}
	n, _ := c.Count(ctx, "signin-fail:ip:198.51.100.7", 15*time.Minute)
	fmt.Println("failures this window:", n)

	clk.Advance(15 * time.Minute)
	n, _ = c.Count(ctx, "signin-fail:ip:198.51.100.7", 15*time.Minute)
	fmt.Println("after the window:", n)
	// Output:
	// failures this window: 3
	// after the window: 0
}
