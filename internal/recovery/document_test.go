package recovery_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/moat-dev/moat/internal/apperr"
	"github.com/moat-dev/moat/internal/recovery"
	"github.com/moat-dev/moat/internal/recovery/recoverytest"
)

func TestSniffDocument(t *testing.T) {
	p := recoverytest.PNG()
	j := recoverytest.JPEG()
	tooBig := make([]byte, recovery.MaxDocumentBytes+1)
	copy(tooBig, p)
	// A JPEG header on a PE body: the decoder refuses it.
	fakeJPEG := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, recoverytest.Executable()...)
	for _, tc := range []struct {
		name string
		data []byte
		want string      // media type; "" for refused
		code apperr.Code // when refused
	}{
		{"png", p, recovery.TypePNG, ""},
		{"jpeg", j, recovery.TypeJPEG, ""},
		{"pdf", recoverytest.PDF(), recovery.TypePDF, ""},
		{"pdf 2.0", []byte("%PDF-2.0\n...\n%%EOF"), recovery.TypePDF, ""},
		{"windows executable named .png", recoverytest.Executable(), "", apperr.Invalid},
		{"elf named .png", recoverytest.ELF(), "", apperr.Invalid},
		{"html", []byte("<!DOCTYPE html><html><script>alert(1)</script></html>"), "", apperr.Invalid},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "", apperr.Invalid},
		{"zip", recoverytest.ZIP(), "", apperr.Invalid},
		{"truncated png", p[:len(p)/2], "", apperr.Invalid},
		{"png without IEND", p[:len(p)-12], "", apperr.Invalid},
		{"png with a bad crc", flip(p, len(p)/2), "", apperr.Invalid},
		{"png signature only", p[:8], "", apperr.Invalid},
		{"truncated jpeg", j[:len(j)/2], "", apperr.Invalid},
		{"jpeg header on an executable", fakeJPEG, "", apperr.Invalid},
		{"pdf without %%EOF", []byte("%PDF-1.7\n1 0 obj\n"), "", apperr.Invalid},
		{"pdf header not at the start", append([]byte("MZ"), recoverytest.PDF()...), "", apperr.Invalid},
		{"pdf %%EOF far from the end", append(recoverytest.PDF(), make([]byte, 4096)...), "", apperr.Invalid},
		{"text", []byte("hello"), "", apperr.Invalid},
		{"empty", nil, "", apperr.Invalid},
		{"10 MiB + 1", tooBig, "", apperr.TooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recovery.SniffDocument(tc.data)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			ae := wantCode(t, err, tc.code)
			if ae.Field != "document" {
				t.Errorf("field %q", ae.Field)
			}
			if tc.code == apperr.Invalid && len(tc.data) > 0 && !strings.Contains(ae.Message, "JPEG, PNG or PDF") {
				t.Errorf("message does not say what is accepted: %q", ae.Message)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x55
	return c
}

// An executable renamed .png is refused when a case is opened, and so is
// an oversized file; nothing is stored.
func TestOpenRefusesDocuments(t *testing.T) {
	w := newWorld(t)
	p := w.user("jane@example.com", "user")
	for _, tc := range []struct {
		data []byte
		code apperr.Code
	}{
		{recoverytest.Executable(), apperr.Invalid},
		{recoverytest.ELF(), apperr.Invalid},
		{nil, apperr.Invalid},
		{make([]byte, recovery.MaxDocumentBytes+1), apperr.TooLarge},
	} {
		_, err := w.rec.Open(w.ctx, recovery.Proof{PendingToken: w.pending(p)}, answers, tc.data, w.web)
		if ae := wantCode(t, err, tc.code); ae.Field != "document" {
			t.Errorf("field %q", ae.Field)
		}
	}
	if n := len(w.mails(p.acct.Email, subjRequested)); n != 0 {
		t.Errorf("%d e-mails for refused uploads", n)
	}
}

// FuzzSniffDocument: whatever the bytes, the sniffer answers without
// panicking, and what it accepts starts with the accepted type's magic.
func FuzzSniffDocument(f *testing.F) {
	f.Add(recoverytest.PNG())
	f.Add(recoverytest.JPEG())
	f.Add(recoverytest.PDF())
	f.Add(recoverytest.Executable())
	f.Add(recoverytest.ELF())
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, err := recovery.SniffDocument(data)
		if err != nil {
			if typ != "" {
				t.Fatalf("type %q with error %v", typ, err)
			}
			if c := apperr.CodeOf(err); c != apperr.Invalid && c != apperr.TooLarge {
				t.Fatalf("code %s", c)
			}
			return
		}
		magic := map[string]string{recovery.TypePNG: "\x89PNG\r\n\x1a\n", recovery.TypeJPEG: "\xff\xd8\xff", recovery.TypePDF: "%PDF-"}[typ]
		if magic == "" || !bytes.HasPrefix(data, []byte(magic)) {
			t.Fatalf("accepted %q for % x", typ, data[:min(len(data), 16)])
		}
	})
}
