package totp

import (
	"bytes"
	"image"
	_ "image/png"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/moat-dev/moat/internal/testenv"
)

// rfcSecret is the SHA-1 seed of RFC 6238 Appendix B.
var rfcSecret = []byte("12345678901234567890")

// rfcVectors are RFC 6238 Appendix B's SHA-1 test vectors (8 digits).
var rfcVectors = []struct {
	unix int64
	code string
}{
	{59, "94287082"},
	{1111111109, "07081804"},
	{1111111111, "14050471"},
	{1234567890, "89005924"},
	{2000000000, "69279037"},
	{20000000000, "65353130"},
}

// TestRFC6238Vectors checks the library against the RFC's 8-digit vectors,
// then checks that Code (6 digits) is the same truncation: the last six
// digits of each vector, since both are the same value mod 10^n.
func TestRFC6238Vectors(t *testing.T) {
	b32secret := b32.EncodeToString(rfcSecret)
	opts := pqtotp.ValidateOpts{Period: 30, Digits: otp.DigitsEight, Algorithm: otp.AlgorithmSHA1}
	for _, v := range rfcVectors {
		at := time.Unix(v.unix, 0).UTC()
		got, err := pqtotp.GenerateCodeCustom(b32secret, at, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got != v.code {
			t.Errorf("GenerateCodeCustom(%d) = %s, want %s", v.unix, got, v.code)
		}
		ok, err := pqtotp.ValidateCustom(v.code, b32secret, at, opts)
		if err != nil || !ok {
			t.Errorf("ValidateCustom(%d, %s) = %v, %v; want true", v.unix, v.code, ok, err)
		}
		if c := Code(rfcSecret, Step(at)); c != v.code[2:] {
			t.Errorf("Code(step of %d) = %s, want %s", v.unix, c, v.code[2:])
		}
		r := Check(rfcSecret, v.code[2:], at)
		if len(r.Steps) != 1 || r.Steps[0] != Step(at) {
			t.Errorf("Check(%s at %d) = %+v, want step %d", v.code[2:], v.unix, r, Step(at))
		}
	}
}

func TestStep(t *testing.T) {
	for _, tc := range []struct {
		unix int64
		want int64
	}{{0, 0}, {29, 0}, {30, 1}, {59, 1}, {1111111109, 37037036}, {-1, -1}} {
		if got := Step(time.Unix(tc.unix, 0)); got != tc.want {
			t.Errorf("Step(%d) = %d, want %d", tc.unix, got, tc.want)
		}
	}
	if got := StepTime(37037036); !got.Equal(time.Unix(1111111080, 0)) {
		t.Errorf("StepTime = %v", got)
	}
}

// TestCheckWindow: codes of the previous, current and next step are
// accepted; 2..10 steps away is drift (refused, with the offset); further
// away is simply wrong.
func TestCheckWindow(t *testing.T) {
	key, err := NewKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)), "moat", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	cur := Step(now)
	for off := int64(-15); off <= 15; off++ {
		code := Code(key.Secret, cur+off)
		r := Check(key.Secret, code, now)
		switch {
		case off >= -Skew && off <= Skew:
			if !contains(r.Steps, cur+off) {
				t.Errorf("offset %d: Steps = %v, want it to contain %d", off, r.Steps, cur+off)
			}
		case off >= -DriftSteps && off <= DriftSteps:
			// A coincidental in-window match is possible in theory; the
			// seed above has none.
			if len(r.Steps) != 0 || r.Drift != off {
				t.Errorf("offset %d: got %+v, want drift %d", off, r, off)
			}
		default:
			if len(r.Steps) != 0 || r.Drift != 0 {
				t.Errorf("offset %d: got %+v, want nothing", off, r)
			}
		}
	}
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestOathtool: the reference client, given the manual key, produces codes
// that Check accepts for the pinned time, including the neighbouring steps.
func TestOathtool(t *testing.T) {
	bin := testenv.Oathtool(t)
	key, err := NewKey(bytes.NewReader(bytes.Repeat([]byte{0x5a, 0x13, 0xc7}, 20)), "moat", "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, off := range []time.Duration{-30 * time.Second, 0, 29 * time.Second, 30 * time.Second, -90 * time.Second} {
		at := now.Add(off)
		// The manual key without its spaces, as a person would type it.
		out, err := exec.Command(bin, "--totp", "-b", strings.ReplaceAll(key.ManualKey(), " ", ""), "--now", at.Format("2006-01-02 15:04:05 UTC")).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		code, err := NormalizeCode(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("oathtool printed %q: %v", out, err)
		}
		if code != Code(key.Secret, Step(at)) {
			t.Errorf("oathtool at %v: %s, Code: %s", at, code, Code(key.Secret, Step(at)))
		}
		r := Check(key.Secret, code, now)
		if off >= -30*time.Second && off < 60*time.Second {
			if !contains(r.Steps, Step(at)) {
				t.Errorf("oathtool code for %v refused at %v: %+v", at, now, r)
			}
		} else if r.Drift != Step(at)-Step(now) {
			t.Errorf("oathtool code for %v: %+v, want drift %d", at, r, Step(at)-Step(now))
		}
	}
}

func TestURI(t *testing.T) {
	key := Key{Secret: rfcSecret, Issuer: "Moat Exchange", Account: "alice+2fa@example.com"}
	u, err := url.Parse(key.URI())
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("URI %s: wrong scheme or type", key.URI())
	}
	if u.Path != "/Moat Exchange:alice+2fa@example.com" {
		t.Errorf("label = %q", u.Path)
	}
	q := u.Query()
	for k, want := range map[string]string{
		"secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "issuer": "Moat Exchange",
		"algorithm": "SHA1", "digits": "6", "period": "30",
	} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	if strings.Contains(key.URI(), "+2fa") == false || strings.Contains(key.URI(), "Moat+Exchange") {
		t.Errorf("URI %s: spaces must be %%20 and a plus sign kept", key.URI())
	}
	// The otp library (what many servers and some apps use) reads it back.
	k, err := otp.NewKeyFromURL(key.URI())
	if err != nil {
		t.Fatal(err)
	}
	if k.Issuer() != "Moat Exchange" || k.AccountName() != "alice+2fa@example.com" || k.Secret() != key.Base32() || k.Period() != 30 || k.Digits() != otp.DigitsSix {
		t.Errorf("otp reads %q %q %q %d %v", k.Issuer(), k.AccountName(), k.Secret(), k.Period(), k.Digits())
	}
}

// TestQRCodeCarriesSecret decodes the PNG with a QR reader and checks it is
// the URI, with the same secret as the manual key.
func TestQRCodeCarriesSecret(t *testing.T) {
	key, err := NewKey(bytes.NewReader(bytes.Repeat([]byte{1, 2, 3, 4, 5}, 8)), "moat", "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	png, err := key.QRCodePNG(256)
	if err != nil {
		t.Fatal(err)
	}
	img, format, err := image.Decode(bytes.NewReader(png))
	if err != nil || format != "png" {
		t.Fatalf("decode image: %v (%s)", err, format)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("QR decode: %v", err)
	}
	if res.GetText() != key.URI() {
		t.Fatalf("QR text %q, want %q", res.GetText(), key.URI())
	}
	u, _ := url.Parse(res.GetText())
	manual := strings.ReplaceAll(key.ManualKey(), " ", "")
	if u.Query().Get("secret") != manual {
		t.Errorf("QR secret %q, manual key %q", u.Query().Get("secret"), manual)
	}
}

func TestNewKey(t *testing.T) {
	k, err := NewKey(bytes.NewReader(make([]byte, 20)), "moat", "a@b.c")
	if err != nil || len(k.Secret) != SecretSize {
		t.Fatalf("NewKey: %v, %d bytes", err, len(k.Secret))
	}
	if _, err := NewKey(bytes.NewReader(make([]byte, 5)), "moat", "a@b.c"); err == nil {
		t.Error("short random source accepted")
	}
	if _, err := NewKey(bytes.NewReader(make([]byte, 20)), "", "a@b.c"); err == nil {
		t.Error("empty issuer accepted")
	}
	if got := (Key{Secret: rfcSecret}).ManualKey(); got != "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ" {
		t.Errorf("ManualKey = %q", got)
	}
	s, err := ParseSecret("gezd gnbv gy3t qojq gezd gnbv gy3t qojq")
	if err != nil || !bytes.Equal(s, rfcSecret) {
		t.Errorf("ParseSecret = %q, %v", s, err)
	}
}

func TestNormalizeCode(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"123456", "123456", true},
		{" 123 456 ", "123456", true},
		{"123-456", "123456", true},
		{"012345", "012345", true},
		{"12345", "", false},
		{"1234567", "", false},
		{"12345a", "", false},
		{"١٢٣٤٥٦", "", false}, // Arabic-Indic digits are not ASCII digits
		{"", "", false},
		{strings.Repeat(" ", 100) + "123456", "", false},
	} {
		got, err := NormalizeCode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeCode(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "12-34-56", "abc", "", "\u00a0123456"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeCode(s)
		if err != nil {
			return
		}
		if len(got) != Digits {
			t.Fatalf("NormalizeCode(%q) = %q: not %d characters", s, got, Digits)
		}
		for _, c := range got {
			if c < '0' || c > '9' {
				t.Fatalf("NormalizeCode(%q) = %q: not digits", s, got)
			}
		}
		if again, err := NormalizeCode(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q, %v", got, again, err)
		}
		// Check must cope with anything NormalizeCode lets through.
		Check(rfcSecret, got, time.Unix(1111111109, 0))
	})
}

func FuzzParseSecret(f *testing.F) {
	f.Add("GEZD GNBV GY3T QOJQ")
	f.Add("gezdgnbv====")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseSecret(s)
		if err != nil {
			return
		}
		again, err := ParseSecret(Key{Secret: b}.ManualKey())
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip of %q: %x -> %x, %v", s, b, again, err)
		}
	})
}
