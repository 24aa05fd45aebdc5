// Package chrome starts the headless Chromium that moat's browser tests
// drive through chromedp, the same way in every package: the binary from
// testenv.Chromium (so the test skips, or fails under MOAT_TEST_REQUIRE=1,
// when none is configured), flags that keep it quiet and offline, and a
// throwaway profile.
package chrome

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/moat-dev/moat/internal/testenv"
)

// Start starts headless Chromium and returns its first tab, already
// running. The browser is closed when the test ends, or killed after
// timeout, whichever comes first.
func Start(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	chromium := testenv.Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return tab
}

// EnableWebAuthn turns on the DevTools WebAuthn domain of tab, so that
// virtual authenticators can be added to it. It must happen before the
// tab's first navigation.
func EnableWebAuthn(t testing.TB, tab context.Context) {
	t.Helper()
	if _, err := chromedp.Call(tab, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
}

// Profile opens a tab in a fresh profile of browser (its own cookies and
// storage), with WebAuthn enabled: one person's browser.
func Profile(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	EnableWebAuthn(t, tab)
	return tab
}
