package apikey

import (
	"fmt"
	"time"
)

// Tier is one level of Kraken's decaying call counter: each call adds its
// route's Cost to the key's counter, the counter falls continuously by
// DecayPerSecond, and a call that would lift it above Max is refused with
// EAPI:Rate limit exceeded.
type Tier struct {
	Max            float64 `toml:"max" json:"max"`
	DecayPerSecond float64 `toml:"decay_per_second" json:"decay_per_second"`
}

// DefaultTierName is the tier of keys that name none.
const DefaultTierName = "starter"

// DefaultTiers are Kraken's published tiers.
func DefaultTiers() map[string]Tier {
	return map[string]Tier{
		"starter":      {Max: 15, DecayPerSecond: 0.33},
		"intermediate": {Max: 20, DecayPerSecond: 0.5},
		"pro":          {Max: 20, DecayPerSecond: 1},
	}
}

// Validate rejects a tier that could never admit a call or never recover.
func (t Tier) Validate() error {
	if t.Max < 1 || t.DecayPerSecond <= 0 {
		return fmt.Errorf("rate tier needs max >= 1 and decay_per_second > 0, got %v and %v", t.Max, t.DecayPerSecond)
	}
	return nil
}

// Lockout is the per-client-address brake on key guessing: every request
// answered EAPI:Invalid key or EAPI:Invalid signature counts one failure;
// failures decay like a rate counter, and the After-th failure in a row (one
// every few seconds keeps the count) locks the address out for For, during
// which every request from it, even with a valid key, is answered
// EGeneral:Temporary lockout.
type Lockout struct {
	After          int           `toml:"after" json:"after"`
	DecayPerSecond float64       `toml:"decay_per_second" json:"decay_per_second"`
	For            time.Duration `toml:"for" json:"for"`
}

// DefaultLockout locks an address for 15 minutes (as Kraken does) after 10
// failures that come faster than one a minute.
func DefaultLockout() Lockout {
	return Lockout{After: 10, DecayPerSecond: 1.0 / 60, For: 15 * time.Minute}
}

// Validate checks the settings; After 0 disables the lockout.
func (l Lockout) Validate() error {
	if l.After < 0 || (l.After > 0 && (l.DecayPerSecond <= 0 || l.For <= 0)) {
		return fmt.Errorf("lockout needs after >= 0, and with after > 0 decay_per_second > 0 and for > 0")
	}
	return nil
}
