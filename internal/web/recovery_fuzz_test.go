package web

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moat-dev/moat/internal/recovery"
)

// FuzzRecoveryForm feeds arbitrary bodies to the recovery form's streaming
// multipart reader, the one parser here of a body that can be 10 MB: it
// never panics, fails only with the form error or the body limit, keeps
// every field within its bound and the document within MaxDocumentBytes,
// and never keeps a document it was told to refuse.
func FuzzRecoveryForm(f *testing.F) {
	const boundary = "XyZzy"
	part := func(name, file, body string) string {
		h := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\""
		if file != "" {
			h += "; filename=\"" + file + "\""
		}
		return h + "\r\n\r\n" + body + "\r\n"
	}
	f.Add([]byte(part("token", "", "abc")+part("account_created", "", "2026-10")+part("document", "p.png", "\x89PNG\r\n")+"--"+boundary+"--\r\n"), true)
	f.Add([]byte(part("document", "p.png", "data")+part("document", "q.png", "again")+"--"+boundary+"--\r\n"), false)
	f.Add([]byte("--"+boundary+"\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--"+boundary+"--"), true)
	f.Add([]byte("not multipart at all"), true)
	f.Add([]byte(""), true)
	f.Fuzz(func(t *testing.T, body []byte, admit bool) {
		r := httptest.NewRequest("POST", "/recovery/new", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		w := httptest.NewRecorder()
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		in, err := readRecoveryForm(r, func(map[string]string) bool { return admit })
		var mb *http.MaxBytesError
		if err != nil && !errors.Is(err, errNotMultipart) && !errors.As(err, &mb) {
			t.Fatalf("unexpected error %T %v", err, err)
		}
		for name, v := range in.values {
			if !isRecoveryField(name) || len(v) > maxRecoveryField {
				t.Fatalf("kept field %q of %d bytes", name, len(v))
			}
		}
		if len(in.document) > recovery.MaxDocumentBytes {
			t.Fatalf("kept a %d-byte document", len(in.document))
		}
		if !admit && len(in.document) > 0 {
			t.Fatal("kept a document it was told to refuse")
		}
	})
}
