package server

import (
	"context"
	"html/template"
	"net/http"
	"regexp"
	"time"

	"github.com/moat-dev/moat/internal/httpx"
	"github.com/moat-dev/moat/internal/mfa/sms"
	"github.com/moat-dev/moat/internal/store"
)

// mailboxLimit is how many e-mails the dev mailbox shows.
const mailboxLimit = 50

// devMailbox serves /dev/mailbox in development mode: the newest e-mails of
// the outbox with their bodies and clickable links. It is how someone
// trying moat without an SMTP server reads a confirmation link. It shows
// every user's e-mail, which is why it exists only in dev mode.
//
// Text messages (SMS codes) of development mode are listed too, clearly
// apart: texts returns them newest first (nil when SMS goes to a real
// provider or is off).
func devMailbox(mail func(ctx context.Context, limit int) ([]store.OutboxMessage, error), brand string, texts func() []sms.Message) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msgs, err := mail(r.Context(), mailboxLimit)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		view := mailboxView{Brand: brand, Limit: mailboxLimit}
		if texts != nil {
			view.Texts = texts()
		}
		for _, m := range msgs {
			view.Messages = append(view.Messages, mailView{
				To: m.To, Subject: m.Subject, Created: m.CreatedAt.UTC().Format(time.DateTime + " UTC"),
				Sent: !m.SentAt.IsZero(), Body: linkify(m.Body),
			})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := mailboxPage.Execute(w, view); err != nil {
			httpx.Logger(r).Error("dev mailbox: render", "err", err)
		}
	})
}

type mailboxView struct {
	Brand    string
	Limit    int
	Messages []mailView
	Texts    []sms.Message
}

type mailView struct {
	To, Subject, Created string
	Sent                 bool
	Body                 []segment
}

// segment is a run of body text, or a link when URL is set.
type segment struct {
	Text string
	URL  string
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"']+`)

// linkify splits text into plain runs and http(s) links. Trailing
// punctuation that ends a sentence is kept out of the link. The template
// escapes everything; html/template also refuses unsafe URL schemes.
func linkify(text string) []segment {
	var out []segment
	last := 0
	for _, loc := range linkRE.FindAllStringIndex(text, -1) {
		start, end := loc[0], loc[1]
		for end > start && isTrailingPunct(text[end-1]) {
			end--
		}
		if start > last {
			out = append(out, segment{Text: text[last:start]})
		}
		out = append(out, segment{Text: text[start:end], URL: text[start:end]})
		last = end
	}
	if last < len(text) {
		out = append(out, segment{Text: text[last:]})
	}
	return out
}

func isTrailingPunct(c byte) bool {
	switch c {
	case '.', ',', ';', ':', '!', '?', ')':
		return true
	}
	return false
}

var mailboxPage = template.Must(template.New("mailbox").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dev mailbox · {{.Brand}}</title>
<link rel="stylesheet" href="/static/moat.css">
</head>
<body>
<main class="mailbox">
<h1>Dev mailbox</h1>
<p>Development mode: e-mail is not delivered anywhere; the newest {{.Limit}} messages are shown here, newest first.
Open the link in a message to continue (for example to confirm your e-mail address). Reload the page to see new mail.</p>
{{range .Messages}}
<article class="mail">
<h2>{{.Subject}}</h2>
<p><strong>To:</strong> {{.To}} · <strong>Written:</strong> <time>{{.Created}}</time>{{if not .Sent}} · queued{{end}}</p>
<pre>{{range .Body}}{{if .URL}}<a href="{{.URL}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{end}}</pre>
</article>
{{else}}
<p>No e-mail yet. Sign up on the <a href="/signup">sign-up page</a> and the confirmation e-mail will appear here.</p>
{{end}}
{{with .Texts}}
<section class="texts" aria-labelledby="texts">
<h2 id="texts">Text messages (SMS) — development only, not sent</h2>
<p>Development mode has no SMS provider: these text messages were <strong>not sent to any phone</strong>. They are kept in this process's memory only, newest first.</p>
{{range .}}
<article class="mail mail--sms">
<p><strong>To:</strong> {{.To}}</p>
<pre>{{.Body}}</pre>
</article>
{{end}}
</section>
{{end}}
</main>
</body>
</html>
`))
