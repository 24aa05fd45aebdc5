package account

import (
	"testing"

	"github.com/moat-dev/moat/internal/clock"
	"github.com/moat-dev/moat/internal/ratelimit"
	"github.com/moat-dev/moat/internal/store"
	"github.com/moat-dev/moat/internal/store/postgres/pgtest"
	"github.com/moat-dev/moat/internal/testenv"
)

// TestOnPostgresAndRedis runs the flows whose guarantees depend on the
// store's and the counter's atomicity again on the many-node backends:
// PostgreSQL for state, Redis for counters.
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
		"SignUpConfirmSignIn":         TestSignUpConfirmSignIn,
		"SignUpEnumeration":           TestSignUpEnumeration,
		"SignInEnumeration":           TestSignInEnumeration,
		"ConfirmationLinks":           TestConfirmationLinks,
		"Throttling":                  TestThrottlingDelayThenTemporaryLock,
		"OwnerDeviceNotLockedOut":     TestOwnerDeviceNotLockedOut,
		"DeviceApprovalCode":          TestDeviceApprovalCode,
		"DeviceApprovalLink":          TestDeviceApprovalLink,
		"StateMachineCannotBeSkipped": TestStateMachineCannotBeSkipped,
		"ConcurrentCompletion":        TestConcurrentCompletionIssuesOneSession,
		"IdleTimeout":                 TestIdleTimeout,
		"RevocationIsImmediate":       TestRevocationIsImmediate,
		"RevocationOnAnotherNode":     TestRevocationOnAnotherNode,
		"SecureAccount":               TestSecureAccount,
		"ChangePassword":              TestChangePassword,
		"AdminUsers":                  TestAdminUsers,
		"SignInPolicy":                TestSignInPolicy,
		"MustEnrol":                   TestMustEnrol,
		"StartSecondFactor":           TestStartSecondFactor,
		"SignInWithPasskey":           TestSignInWithPasskey,
		"StepUpForPasswordChange":     TestStepUpForPasswordChange,
		"RecordStepUp":                TestRecordStepUp,
		"ResetRequestEnumeration":     TestResetRequestEnumeration,
		"ResetPassword":               TestResetPassword,
		"ResetConcurrentUse":          TestResetConcurrentUse,
		"ResetLinkExpires":            TestResetLinkExpires,
		"ResetVoidedByPasswordChange": TestResetLinkVoidedByPasswordChange,
		"ResetVoidedByNewerLink":      TestResetLinkVoidedByNewerLink,
		"ResetRevokesSessions":        TestResetRevokesSessions,
		"ResetNeedsSecondFactor":      TestResetNeedsSecondFactor,
		"ResetLockedAccount":          TestResetLockedAccount,
		"ResetConfirmsAddress":        TestResetConfirmsAddress,
		"StartResetFactor":            TestStartResetFactor,
		"PendingSecondFactorAccount":  TestPendingSecondFactorAccount,
		"SignInFactorAndHooks":        TestSignInFactorAndHooks,
		"StaffAccountTools":           TestStaffAccountTools,
	} {
		t.Run(name, fn)
	}
}
