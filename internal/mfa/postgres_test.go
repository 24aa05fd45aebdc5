package mfa_test

import (
	"testing"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
)

// TestOnPostgresAndRedis runs the tests whose guarantees rest on the
// store's and the counter's atomicity (single use, replay, limits, rollback,
// throttling) again on the many-node backends: PostgreSQL for the factors,
// Redis for the counters.
func TestOnPostgresAndRedis(t *testing.T) {
	testenv.PostgresDSN(t) // skips, or fails under MOAT_TEST_REQUIRE=1
	db := pgtest.NewDB(t)
	rdb := testenv.Redis(t)
	backend.store = func(t testing.TB) store.Store { return db.Open(t) }
	backend.counter = func(t testing.TB, clk clock.Clock) ratelimit.Counter {
		return ratelimit.NewRedis(rdb, clk, testenv.RedisKeyPrefix(t))
	}
	t.Cleanup(func() { backend.store, backend.counter = nil, nil })

	for name, fn := range map[string]func(*testing.T){
		"TOTPEnrolment":              TestTOTPEnrolment,
		"TOTPVerify":                 TestTOTPVerify,
		"TOTPConcurrentReplay":       TestTOTPConcurrentReplay,
		"TOTPThrottle":               TestTOTPThrottle,
		"ConfirmRollsBack":           TestConfirmRollsBack,
		"RemoveTOTP":                 TestRemoveTOTP,
		"BackupCodesSingleUse":       TestBackupCodesSingleUse,
		"BackupCodeConcurrentSpend":  TestBackupCodeConcurrentSpend,
		"RegenerateBackupCodes":      TestRegenerateBackupCodes,
		"SecurityKeyLifecycle":       TestSecurityKeyLifecycle,
		"CeremonySingleUse":          TestCeremonySingleUse,
		"SignCountRegression":        TestSignCountRegression,
		"SecurityKeyLimitConcurrent": TestSecurityKeyLimitConcurrent,
		"SameKeyTwice":               TestSameKeyTwice,
		"PasskeySignIn":              TestPasskeySignIn,
		"CeremonyCleanup":            TestCeremonyCleanup,
		"SMSEnrolment":               TestSMSEnrolment,
		"SMSCodeTries":               TestSMSCodeTries,
		"SMSSendLimit":               TestSMSSendLimit,
		"SMSPurposes":                TestSMSPurposes,
		"RemovePhone":                TestRemovePhone,
		"StepUpWithEachMethod":       TestStepUpWithEachMethod,
		"Settings":                   TestSettings,
	} {
		t.Run(name, fn)
	}
}
