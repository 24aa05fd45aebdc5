package password

import (
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/moat-dev/moat/internal/apperr"
)

// fastParams keep tests quick; production uses DefaultParams.
var fastParams = Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func newHasher(t testing.TB, p Params) *Hasher {
	t.Helper()
	h, err := NewHasher(p, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashFormat(t *testing.T) {
	h := newHasher(t, DefaultParams())
	s, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not have the PHC prefix", s)
	}
	parts := strings.Split(s, "$")
	if len(parts[4]) != 22 || len(parts[5]) != 43 { // 16 and 32 bytes, unpadded base64
		t.Fatalf("salt/key encodings have unexpected lengths in %q", s)
	}
	s2, _ := h.Hash("correct horse battery staple")
	if s == s2 {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
}

func TestVerify(t *testing.T) {
	h := newHasher(t, fastParams)
	const pw = "Grüße aus Köln, 🦊 und so weiter"
	current, _ := h.Hash(pw)
	older, _ := newHasher(t, Params{MemoryKiB: 32, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}).Hash(pw)
	bc, err := bcrypt.GenerateFromPassword([]byte(pw[:20]), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bcryptB := string(bc)
	bcryptY := "$2y$" + bcryptB[4:]
	bcryptA := "$2a$" + bcryptB[4:]
	salt := []byte("0123456789abcdef")
	argon2i := phc{variant: "argon2i", params: fastParams, salt: salt,
		key: argon2.Key([]byte(pw), salt, fastParams.Time, fastParams.MemoryKiB, fastParams.Threads, fastParams.KeyLen)}.String()

	tests := []struct {
		name         string
		pw, stored   string
		ok, rehash   bool
		unknownError bool
	}{
		{"current params", pw, current, true, false, false},
		{"wrong password", pw + " ", current, false, false, false},
		{"case matters", strings.ToUpper(pw), current, false, false, false},
		{"older params need rehash", pw, older, true, true, false},
		{"older params wrong password", "nope", older, false, false, false},
		{"bcrypt 2b import", pw[:20], bcryptB, true, true, false},
		{"bcrypt 2y import", pw[:20], bcryptY, true, true, false},
		{"bcrypt 2a import", pw[:20], bcryptA, true, true, false},
		{"bcrypt wrong", "wrong password", bcryptB, false, false, false},
		{"argon2i import", pw, argon2i, true, true, false},
		{"empty hash", pw, "", false, false, true},
		{"plaintext", pw, pw, false, false, true},
		{"truncated", pw, current[:len(current)-10], false, false, false}, // shorter key: still well-formed, no match
		{"bad version", pw, strings.Replace(current, "v=19", "v=16", 1), false, false, true},
		{"garbage bcrypt", pw, "$2b$10$abc", false, false, true},
		{"bcrypt cost too high", pw, "$2b$31$" + bcryptB[7:], false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, rehash, err := h.Verify(tc.pw, tc.stored)
			if tc.unknownError {
				if !errors.Is(err, ErrUnknownFormat) {
					t.Fatalf("err = %v, want ErrUnknownFormat", err)
				}
				if ok {
					t.Fatal("ok with an unreadable hash")
				}
				return
			}
			if err != nil && tc.name != "truncated" {
				t.Fatalf("unexpected error %v", err)
			}
			if ok != tc.ok || rehash != tc.rehash {
				t.Fatalf("Verify = (%v, %v), want (%v, %v)", ok, rehash, tc.ok, tc.rehash)
			}
		})
	}
}

// Many concurrent hashes and verifications, more than may compute at once
// (one per CPU), all finish with the right answers and free their slots.
func TestConcurrentUse(t *testing.T) {
	h := newHasher(t, fastParams)
	if want := max(1, runtime.GOMAXPROCS(0)); cap(h.slots) != want {
		t.Fatalf("%d computations at once, want %d (GOMAXPROCS)", cap(h.slots), want)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			pw := fmt.Sprintf("password number %d", i)
			stored, err := h.Hash(pw)
			if err != nil {
				errs <- err
				return
			}
			if ok, _, err := h.Verify(pw, stored); !ok || err != nil {
				errs <- fmt.Errorf("%q does not verify: %v", pw, err)
			}
			if ok, _, _ := h.Verify(pw+"!", stored); ok {
				errs <- fmt.Errorf("%q verifies with another password", pw)
			}
			if h.DummyVerify(pw) {
				errs <- errors.New("DummyVerify matched")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(h.slots); n != 0 {
		t.Fatalf("%d computation slots still taken", n)
	}
}

// After a hash, its memory (19 MiB by default) is collected at once, so the
// heap does not grow by twice that before the next collection.
func TestHashMemoryCollected(t *testing.T) {
	h := newHasher(t, DefaultParams())
	if _, err := h.Hash("correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
	for h.collecting.Load() { // the collection argon2 started
		time.Sleep(time.Millisecond)
	}
	sample := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(sample)
	cost := uint64(DefaultParams().MemoryKiB) << 10
	if goal := sample[0].Value.Uint64(); goal >= cost {
		t.Fatalf("next collection at %d MiB of heap, more than one hash's %d MiB", goal>>20, cost>>20)
	}
}

func TestDummyVerifyNeverMatches(t *testing.T) {
	h := newHasher(t, fastParams)
	for _, pw := range []string{"", "password", strings.Repeat("x", 256)} {
		if h.DummyVerify(pw) {
			t.Fatalf("DummyVerify(%q) = true", pw)
		}
	}
}

func TestNewHasherRejectsBadParams(t *testing.T) {
	for _, p := range []Params{
		{MemoryKiB: 19456, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{MemoryKiB: 19456, Time: 2, Threads: 0, SaltLen: 16, KeyLen: 32},
		{MemoryKiB: 4, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		{MemoryKiB: 19456, Time: 2, Threads: 1, SaltLen: 4, KeyLen: 32},
		{MemoryKiB: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 8},
	} {
		if _, err := NewHasher(p, rand.Reader); err == nil {
			t.Errorf("NewHasher(%+v) accepted bad parameters", p)
		}
	}
}

func TestParsePHC(t *testing.T) {
	good := "$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43)
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("parsePHC(%q): %v", good, err)
	}
	bad := []string{
		"$argon2d$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43),
		"$argon2id$v=19$t=2,m=19456,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43),  // order
		"$argon2id$v=19$m=019456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43), // leading zero
		"$argon2id$v=19$m=19456,t=2,p=1,k=2$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=19456,t=2,p=256$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=99999999,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43), // memory bomb
		"$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$" + strings.Repeat("A", 43),  // padded
		"$argon2id$v=19$m=19456,t=2,p=1$MDEy$" + strings.Repeat("A", 43),                      // short salt
		"$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43) + "$",
		"argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43),
	}
	for _, s := range bad {
		if _, err := parsePHC(s); err == nil {
			t.Errorf("parsePHC(%q) accepted a malformed hash", s)
		}
	}
}

// FuzzParsePHC attacks the parser of stored and imported hashes: it must
// never panic, must keep parameters within limits (a hostile import cannot
// ask for gigabytes), and whatever it accepts is canonical.
func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 43))
	f.Add("$argon2i$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$" + strings.Repeat("A", 22))
	f.Add("$2b$10$abcdefghijklmnopqrstuuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.params.validate() != nil {
			t.Fatalf("accepted out-of-range params %+v", p.params)
		}
		if got := p.String(); got != s {
			t.Fatalf("accepted non-canonical %q (canonical %q)", s, got)
		}
	})
}

// exactly256 is a good passphrase of 256 runes (multi-byte ones included).
var exactly256 = func() string {
	s := "Fjörd lantern quibble 🦊 marmalade obelisk vortex nimbus "
	for len([]rune(s)) < 256 {
		s += "zephyr kumquat ø "
	}
	return string([]rune(s)[:256])
}()

func TestPolicy(t *testing.T) {
	pol := DefaultPolicy("moat")
	tests := []struct {
		name   string
		pw     string
		inputs []string
		ok     bool
		want   string // substring of the message
	}{
		{"too short", "aB3$xYz9", nil, false, "at least 10 characters"},
		{"short in runes though long in bytes", "ÄÖÜäöüß€", nil, false, "at least 10"},
		{"too long", strings.Repeat("wordy ", 43), nil, false, "at most 256"},
		{"common", "password123", nil, false, "commonly used"},
		{"digits", "1234567890", nil, false, "commonly used"},
		{"keyboard", "qwertyuiop", nil, false, ""},
		{"repeat", "aaaaaaaaaaaaaa", nil, false, "predictable"},
		{"built from email", "jane.doe.example", []string{"jane.doe@example.com"}, false, "e-mail address"},
		{"email itself", "jane.doe@example.com", []string{"jane.doe@example.com"}, false, "e-mail address"},
		{"email parts run together", "JaneDoeExample", []string{"jane.doe@example.com"}, false, "e-mail address"},
		{"email parts plus year", "janedoe1985", []string{"jane.doe@example.com"}, false, "e-mail address"},
		{"brand", "moatmoatmoat1", nil, false, ""},
		{"passphrase", "correct horse battery staple", nil, true, ""},
		{"unicode passphrase", "Bärenhöhle Wolkenkratzer Füße", nil, true, ""},
		{"emoji passphrase", "🦊 jumps over 🐢 at dawn", nil, true, ""},
		{"long random tail beyond scoring window", "tangerine velvet octopus " + strings.Repeat("z", 200), nil, true, ""},
		{"exactly 256", exactly256, nil, true, ""},
		{"257", exactly256 + "x", nil, false, "at most 256"},
		{"long but one repeated chunk", strings.Repeat("Kx7!p", 51) + "q", nil, false, "predictable"},
		{"invalid utf8", "valid text \xff\xfe with junk", nil, false, "not valid text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := pol.Check(tc.pw, tc.inputs...)
			if tc.ok {
				if err != nil {
					t.Fatalf("Check refused a good password: %v", err)
				}
				return
			}
			e, ok := apperr.As(err)
			if !ok || e.Code != apperr.WeakPassword || e.Field != "password" {
				t.Fatalf("Check = %v, want WeakPassword on field password", err)
			}
			if !strings.Contains(e.Message, tc.want) {
				t.Fatalf("message %q does not contain %q", e.Message, tc.want)
			}
			if !strings.Contains(strings.ToLower(e.Message), "use ") {
				t.Fatalf("message %q does not say what to do", e.Message)
			}
		})
	}
}

func BenchmarkHash(b *testing.B) {
	h := newHasher(b, DefaultParams())
	for b.Loop() {
		if _, err := h.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := newHasher(b, DefaultParams())
	s, _ := h.Hash("correct horse battery staple")
	for b.Loop() {
		if ok, _, _ := h.Verify("correct horse battery staple", s); !ok {
			b.Fatal("no match")
		}
	}
}

func BenchmarkDummyVerify(b *testing.B) {
	h := newHasher(b, DefaultParams())
	for b.Loop() {
		h.DummyVerify("correct horse battery staple")
	}
}

func BenchmarkPolicyCheckLong(b *testing.B) {
	pol := DefaultPolicy("moat")
	pw := exactly256
	for b.Loop() {
		_ = pol.Check(pw, "jane.doe@example.com")
	}
}

// FuzzPolicyCheck: any input either passes or gets a WeakPassword error on
// the password field; zxcvbn must never panic on it.
func FuzzPolicyCheck(f *testing.F) {
	f.Add("correct horse battery staple", "jane@example.com")
	f.Add("Fjörd 🦊 ø ø ø ø ø ø ø ø ø", "ø@ø.ø")
	f.Add("\xff\xfe", "")
	pol := DefaultPolicy("moat")
	f.Fuzz(func(t *testing.T, pw, input string) {
		err := pol.Check(pw, input)
		if err == nil {
			return
		}
		if e, ok := apperr.As(err); !ok || e.Code != apperr.WeakPassword || e.Field != "password" {
			t.Fatalf("Check(%q) = %v", pw, err)
		}
	})
}
