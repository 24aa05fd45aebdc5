package account

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the user-agent summariser: it reads only the start of a
// (client-controlled) header and returns a short, printable name.
const (
	maxUARead   = 512
	maxNameRune = 64
)

// deviceName summarises a User-Agent header for people: "Chrome on
// Windows", "Firefox on Linux", "Safari on iPhone". An app or tool that
// names itself first ("moat-ios/1.2 (iPhone; iOS 17)", "curl/8.5.0") is
// shown by that name. It is a hint for recognising one's own devices, not
// an identification: the header is whatever the client sends.
func deviceName(ua string) string {
	if len(ua) > maxUARead {
		ua = ua[:maxUARead]
	}
	ua = strings.ToValidUTF8(ua, "")
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return "Unknown device"
	}
	if !strings.HasPrefix(ua, "Mozilla/") && !strings.HasPrefix(ua, "Opera/") {
		return clean(firstProduct(ua))
	}
	browser := browserOf(ua)
	osName := osOf(ua)
	switch {
	case browser != "" && osName != "":
		return browser + " on " + osName
	case browser != "":
		return browser
	case osName != "":
		return "Browser on " + osName
	}
	return "Web browser"
}

// firstProduct returns the leading "name/version" token of a user agent.
func firstProduct(ua string) string {
	if i := strings.IndexAny(ua, " \t("); i > 0 {
		ua = ua[:i]
	}
	return ua
}

// browserOf names the browser. Order matters: Edge and Opera also say
// Chrome, Chrome also says Safari.
func browserOf(ua string) string {
	has := func(s string) bool { return strings.Contains(ua, s) }
	switch {
	case has("Edg/") || has("EdgA/") || has("EdgiOS/") || has("Edge/"):
		return "Edge"
	case has("OPR/") || has("Opera"):
		return "Opera"
	case has("SamsungBrowser/"):
		return "Samsung Internet"
	case has("Firefox/") || has("FxiOS/"):
		return "Firefox"
	case has("CriOS/") || has("Chrome/") || has("Chromium/"):
		return "Chrome"
	case has("Safari/") && has("Version/"):
		return "Safari"
	case has("Trident/") || has("MSIE "):
		return "Internet Explorer"
	}
	return ""
}

// osOf names the operating system or device. iPhone and iPad come before
// "Mac OS X", which their user agents also contain; Android before Linux.
func osOf(ua string) string {
	has := func(s string) bool { return strings.Contains(ua, s) }
	switch {
	case has("iPhone"):
		return "iPhone"
	case has("iPad"):
		return "iPad"
	case has("Android"):
		return "Android"
	case has("Windows"):
		return "Windows"
	case has("CrOS"):
		return "ChromeOS"
	case has("Macintosh") || has("Mac OS X"):
		return "macOS"
	case has("Linux") || has("X11"):
		return "Linux"
	}
	return ""
}

// clean keeps printable characters and caps the length, so a hostile
// header cannot put control characters or a novel into a device list or an
// e-mail.
func clean(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxNameRune {
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			continue
		}
		b.WriteRune(r)
		n++
	}
	if out := strings.TrimSpace(b.String()); out != "" {
		return out
	}
	return "Unknown device"
}
