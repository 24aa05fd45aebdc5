package account

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDeviceName(t *testing.T) {
	tests := []struct{ ua, want string }{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on Windows"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Safari on iPhone"},
		{"Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0 Mobile/15E148 Safari/604.1", "Chrome on iPad"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge on Windows"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0", "Opera on Windows"},
		{"moat-ios/1.2 (iPhone; iOS 17.5)", "moat-ios/1.2"},
		{"moat-android/3.0.1", "moat-android/3.0.1"},
		{"curl/8.5.0", "curl/8.5.0"},
		{"Mozilla/5.0 (compatible; Unknown)", "Web browser"},
		{"Mozilla/5.0 (Windows NT 10.0)", "Browser on Windows"},
		{"", "Unknown device"},
		{"   ", "Unknown device"},
		{"\x00\x01\x02", "Unknown device"},
		{"evil\u202eapp/1.0", "evilapp/1.0"},
		{strings.Repeat("A", 1000), strings.Repeat("A", maxNameRune)},
	}
	for _, tc := range tests {
		if got := deviceName(tc.ua); got != tc.want {
			t.Errorf("deviceName(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}

// FuzzDeviceName: the summariser reads a client-controlled header; its
// output ends up in pages and e-mails. It must never panic and always
// return short, valid, printable text.
func FuzzDeviceName(f *testing.F) {
	f.Add("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Safari/604.1")
	f.Add("moat-ios/1.2 (iPhone)")
	f.Add("\xff\xfe\u202e")
	f.Add("Mozilla/")
	f.Fuzz(func(t *testing.T, ua string) {
		got := deviceName(ua)
		if got == "" || !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxNameRune {
			t.Fatalf("deviceName(%q) = %q", ua, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) {
				t.Fatalf("deviceName(%q) = %q has unprintable %U", ua, got, r)
			}
		}
	})
}
