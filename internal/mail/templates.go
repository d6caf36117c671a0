package mail

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// Subjects of the account mails; fixed by the API contract (and matched by
// the Videoflix frontend's expectations), so they are not configurable.
const (
	SubjectActivation    = "Confirm your email"
	SubjectPasswordReset = "Reset your password"
)

// templateData is what both parts of an account mail are rendered from.
type templateData struct {
	Greeting string // "Hi alice," or "Hi there," without a username
	Intro    string
	Action   string // button label
	Link     string
	Outro    string
}

// The templates are parsed once at package initialisation and only read
// afterwards (Execute is safe for concurrent use). The HTML part uses
// html/template so that a username like "<script>" is escaped and a link
// with a non-http(s) scheme is neutralised, whatever the caller passes.
var (
	textTmpl = texttemplate.Must(texttemplate.New("text").Parse(
		`{{.Greeting}}

{{.Intro}}

{{.Link}}

{{.Outro}}

— Plaza
`))

	htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; line-height: 1.5; color: #222;">
<p>{{.Greeting}}</p>
<p>{{.Intro}}</p>
<p><a href="{{.Link}}" style="display: inline-block; padding: 10px 18px; background: #2d6cdf; color: #fff; text-decoration: none; border-radius: 4px;">{{.Action}}</a></p>
<p style="font-size: 0.9em; color: #555;">If the button does not work, copy this link into your browser:<br><a href="{{.Link}}">{{.Link}}</a></p>
<p style="font-size: 0.9em; color: #555;">{{.Outro}}</p>
<p>— Plaza</p>
</body>
</html>
`))
)

// ActivationMail is the mail sent after registration: subject "Confirm your
// email", both parts carry link, and the greeting uses username.
func ActivationMail(to, username, link string) Message {
	return render(to, SubjectActivation, templateData{
		Greeting: greeting(username),
		Intro:    "Thanks for signing up for Plaza. Please confirm your email address to activate your account:",
		Action:   "Activate account",
		Link:     link,
		Outro:    "If you did not create a Plaza account, you can ignore this email.",
	})
}

// PasswordResetMail is the mail sent on a password reset request: subject
// "Reset your password", both parts carry link.
func PasswordResetMail(to, username, link string) Message {
	return render(to, SubjectPasswordReset, templateData{
		Greeting: greeting(username),
		Intro:    "We received a request to reset the password of your Plaza account. Choose a new password here:",
		Action:   "Reset password",
		Link:     link,
		Outro:    "If you did not ask for this, you can ignore this email; your password stays unchanged.",
	})
}

func greeting(username string) string {
	// Line breaks in a name would let it forge lines of the text part.
	username = strings.Join(strings.Fields(username), " ")
	if username == "" {
		return "Hi there,"
	}
	return "Hi " + username + ","
}

// render executes both templates. The templates are fixed and the data are
// plain strings, so execution cannot fail except through a programming
// error in this file; panicking then is caught by the tests.
func render(to, subject string, d templateData) Message {
	var text, html bytes.Buffer
	if err := textTmpl.Execute(&text, d); err != nil {
		panic("mail: text template: " + err.Error())
	}
	if err := htmlTmpl.Execute(&html, d); err != nil {
		panic("mail: html template: " + err.Error())
	}
	return Message{To: to, Subject: subject, Text: text.String(), HTML: html.String()}
}
