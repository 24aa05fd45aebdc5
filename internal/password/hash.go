// Package password hashes and checks passwords: argon2id in PHC string
// format for everything moat stores, verification of imported bcrypt and
// argon2 hashes, and the password policy (length and guessability).
//
// Passwords are used exactly as typed: no trimming, no case folding, no
// Unicode normalisation. A password that differs in any byte is a different
// password.
package password

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params are argon2id parameters.
type Params struct {
	// MemoryKiB is the memory cost in KiB.
	MemoryKiB uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen are in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// DefaultParams are OWASP's argon2id recommendation (m=19456 KiB, t=2, p=1)
// with a 16-byte salt and a 32-byte key.
func DefaultParams() Params {
	return Params{MemoryKiB: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Limits on parameters read from stored or imported hashes, so a hostile
// import cannot make one verification take minutes or gigabytes.
const (
	maxMemoryKiB  = 1 << 21 // 2 GiB
	maxTime       = 64
	minSaltLen    = 8
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 128
	maxBcryptCost = 17
)

func (p Params) validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("password: argon2 threads must be at least 1")
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("password: argon2 time must be 1..%d", maxTime)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("password: argon2 memory must be 8*threads..%d KiB", maxMemoryKiB)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("password: salt length must be %d..%d bytes", minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("password: key length must be %d..%d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}

// ErrUnknownFormat is returned by Verify for a stored hash it cannot read.
var ErrUnknownFormat = errors.New("password: unknown or malformed password hash")

// Hasher hashes new passwords with its parameters and verifies stored ones.
// It is safe for concurrent use.
//
// At most as many argon2 computations run at once as there are CPUs for
// them (GOMAXPROCS when NewHasher ran, divided by the parallelism of the
// parameters); the others wait their turn. Running more at once would not
// finish any sooner, since each keeps a CPU busy, but every one holds its
// memory cost (19 MiB by default) for the whole time: a burst of sign-ins
// would take that much memory each, and interleaving them on the CPUs
// makes each one slower.
type Hasher struct {
	params Params
	rand   io.Reader
	// dummySalt is a fixed salt for DummyVerify.
	dummySalt []byte
	// slots holds a token for each argon2 computation running.
	slots chan struct{}
	// busy counts the computations running or waiting for a slot, and
	// collecting is set while a collection asked for by argon2 runs.
	busy       atomic.Int32
	collecting atomic.Bool
}

// NewHasher returns a Hasher using p for new hashes and r for salts
// (crypto/rand.Reader in production).
func NewHasher(p Params, r io.Reader) (*Hasher, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.New("password: nil random source")
	}
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(r, salt); err != nil {
		return nil, fmt.Errorf("password: read random: %w", err)
	}
	slots := max(1, runtime.GOMAXPROCS(0)/int(p.Threads))
	return &Hasher{params: p, rand: r, dummySalt: salt, slots: make(chan struct{}, slots)}, nil
}

// collectFromKiB is the memory cost from which a computation's memory is
// worth collecting as soon as it is garbage (see argon2).
const collectFromKiB = 4 << 10

// argon2 runs f, a computation that costs memKiB of memory, as one of the
// computations allowed at once.
//
// When the last computation running finishes, argon2 starts a garbage
// collection in the background, so that its memory is reclaimed now. Left
// to itself the runtime would not: a collection that ran while the
// computation held its memory (each computation's allocation starts one)
// saw that memory live and set the next collection at twice as much heap,
// so after a single sign-in an idle or lightly loaded server would grow its
// heap by about twice the argon2 memory cost before collecting again (40
// MB with the defaults). A collection of the rest of moat's small heap
// costs far less than one hash.
func (h *Hasher) argon2(memKiB uint32, f func() []byte) []byte {
	h.busy.Add(1)
	h.slots <- struct{}{}
	key := f()
	<-h.slots
	if h.busy.Add(-1) == 0 && memKiB >= collectFromKiB && h.collecting.CompareAndSwap(false, true) {
		go func() {
			runtime.GC()
			h.collecting.Store(false)
		}()
	}
	return key
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of pw:
// $argon2id$v=19$m=19456,t=2,p=1$<base64 salt>$<base64 key>.
func (h *Hasher) Hash(pw string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := io.ReadFull(h.rand, salt); err != nil {
		return "", fmt.Errorf("password: read random: %w", err)
	}
	key := h.argon2(h.params.MemoryKiB, func() []byte {
		return argon2.IDKey([]byte(pw), salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, h.params.KeyLen)
	})
	return phc{variant: "argon2id", params: h.params, salt: salt, key: key}.String(), nil
}

// Verify reports whether pw matches the stored hash phc, comparing in
// constant time. needsRehash is true when pw matched but the hash should be
// replaced by Hash(pw): it uses other parameters than h, or another scheme
// (an imported bcrypt or argon2i hash). err is ErrUnknownFormat for a hash
// it cannot read; a wrong password is ok=false with a nil error.
func (h *Hasher) Verify(pw, stored string) (ok, needsRehash bool, err error) {
	if isBcrypt(stored) {
		cost, err := bcrypt.Cost([]byte(stored))
		if err != nil || cost > maxBcryptCost {
			return false, false, ErrUnknownFormat
		}
		switch err := bcrypt.CompareHashAndPassword([]byte(stored), []byte(pw)); {
		case err == nil:
			return true, true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, false, nil
		default:
			return false, false, ErrUnknownFormat
		}
	}
	p, err := parsePHC(stored)
	if err != nil {
		return false, false, err
	}
	key := h.argon2(p.params.MemoryKiB, func() []byte {
		if p.variant == "argon2i" {
			return argon2.Key([]byte(pw), p.salt, p.params.Time, p.params.MemoryKiB, p.params.Threads, p.params.KeyLen)
		}
		return argon2.IDKey([]byte(pw), p.salt, p.params.Time, p.params.MemoryKiB, p.params.Threads, p.params.KeyLen)
	})
	if subtle.ConstantTimeCompare(key, p.key) != 1 {
		return false, false, nil
	}
	return true, p.variant != "argon2id" || p.params != h.params, nil
}

// DummyVerify does the work of Verify against a hash made with h's
// parameters and always returns false. Call it when there is no account for
// the e-mail given, so that "no such account" takes as long as "wrong
// password" and timing does not tell which addresses have accounts.
func (h *Hasher) DummyVerify(pw string) bool {
	key := h.argon2(h.params.MemoryKiB, func() []byte {
		return argon2.IDKey([]byte(pw), h.dummySalt, h.params.Time, h.params.MemoryKiB, h.params.Threads, h.params.KeyLen)
	})
	// Compare against a key of the same length so the comparison costs the
	// same too; the result is discarded: there is nothing to match.
	var stored [maxKeyLen]byte
	subtle.ConstantTimeCompare(key, stored[:len(key)])
	return false
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// phc is a parsed argon2 PHC string.
type phc struct {
	variant string // "argon2id" or "argon2i"
	params  Params
	salt    []byte
	key     []byte
}

func (p phc) String() string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", p.variant, argon2.Version,
		p.params.MemoryKiB, p.params.Time, p.params.Threads,
		enc.EncodeToString(p.salt), enc.EncodeToString(p.key))
}

// parsePHC reads $argon2id$v=19$m=M,t=T,p=P$salt$key (also argon2i). It is
// strict, so every accepted string is the canonical spelling of its value:
// version 19 only, m, t and p in that order, plain decimals, unpadded
// standard base64, and parameters within the limits above.
func parsePHC(s string) (phc, error) {
	var p phc
	if len(s) > 512 {
		return p, ErrUnknownFormat
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return p, ErrUnknownFormat
	}
	p.variant = parts[1]
	if p.variant != "argon2id" && p.variant != "argon2i" {
		return p, ErrUnknownFormat
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, ErrUnknownFormat
	}
	kvs := strings.Split(parts[3], ",")
	if len(kvs) != 3 {
		return p, ErrUnknownFormat
	}
	var vals [3]uint64
	for i, name := range [3]string{"m", "t", "p"} {
		k, v, ok := strings.Cut(kvs[i], "=")
		if !ok || k != name || !isDecimal(v) {
			return p, ErrUnknownFormat
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, ErrUnknownFormat
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return p, ErrUnknownFormat
	}
	p.params.MemoryKiB, p.params.Time, p.params.Threads = uint32(vals[0]), uint32(vals[1]), uint8(vals[2])
	if !isB64(parts[4]) || !isB64(parts[5]) {
		return p, ErrUnknownFormat
	}
	var err error
	enc := base64.RawStdEncoding.Strict()
	if p.salt, err = enc.DecodeString(parts[4]); err != nil {
		return p, ErrUnknownFormat
	}
	if p.key, err = enc.DecodeString(parts[5]); err != nil {
		return p, ErrUnknownFormat
	}
	p.params.SaltLen, p.params.KeyLen = uint32(len(p.salt)), uint32(len(p.key))
	if p.params.validate() != nil {
		return p, ErrUnknownFormat
	}
	return p, nil
}

// isB64 reports whether s uses only the standard base64 alphabet (the
// decoder itself skips CR and LF).
func isB64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// isDecimal reports whether s is a non-empty run of ASCII digits without a
// superfluous leading zero (so every value has exactly one spelling).
func isDecimal(s string) bool {
	if s == "" || len(s) > 10 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
