package account

import (
	_ "embed"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"
)

// ValidationError carries per-field messages for a 400 answer.
type ValidationError struct {
	Fields map[string][]string
}

func (e *ValidationError) Error() string { return "account: invalid input" }

func (e *ValidationError) add(field, msg string) {
	if e.Fields == nil {
		e.Fields = map[string][]string{}
	}
	e.Fields[field] = append(e.Fields[field], msg)
}

func (e *ValidationError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// NormalizeEmail trims and lowercases an address and reports whether it is a
// plain, valid address (name@domain.tld, no display name, at most 254 bytes).
func NormalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || len(s) > 254 {
		return "", false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", false
	}
	at := strings.LastIndexByte(s, '@')
	domain := s[at+1:]
	if at < 1 || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", false
	}
	return s, true
}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,30}$`)

// ValidUsername reports whether s can be a username: 3 to 30 letters,
// digits, '_', '.' or '-', not only digits (so it never reads as an id).
func ValidUsername(s string) bool {
	return usernamePattern.MatchString(s) && strings.Trim(s, "0123456789") != ""
}

//go:embed common_passwords.txt
var commonPasswordsText string

// passwordChecker rejects short, all-digit and common passwords.
type passwordChecker struct {
	common map[string]struct{}
}

func newPasswordChecker() passwordChecker {
	pc := passwordChecker{common: map[string]struct{}{}}
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			pc.common[strings.ToLower(line)] = struct{}{}
		}
	}
	return pc
}

// problems lists what is wrong with a password; none means acceptable.
func (pc passwordChecker) problems(pw, email, username string) []string {
	var out []string
	if utf8.RuneCountInString(pw) < 8 {
		out = append(out, "This password is too short. It must contain at least 8 characters.")
	}
	if len(pw) > 1024 {
		out = append(out, "This password is too long.")
	}
	if pw != "" && strings.Trim(pw, "0123456789") == "" {
		out = append(out, "This password is entirely numeric.")
	}
	lower := strings.ToLower(pw)
	if _, ok := pc.common[lower]; ok {
		out = append(out, "This password is too common.")
	} else if local, _, _ := strings.Cut(email, "@"); (len(local) >= 4 && lower == local) || (username != "" && lower == strings.ToLower(username)) {
		// The length floor is for the email's local part only: a password
		// equal to the username is refused however short the email is.
		out = append(out, "This password is too similar to the email address or username.")
	}
	return out
}

// usernameFromEmail derives a username candidate from an address.
func usernameFromEmail(email string) string {
	local, _, _ := strings.Cut(email, "@")
	var b strings.Builder
	for _, r := range local {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		case r == '+':
			// sub-addressing tags are private; drop the rest of the local part
			goto done
		}
	}
done:
	name := b.String()
	if len(name) > 24 {
		name = name[:24]
	}
	for len(name) < 3 {
		name += "_"
	}
	if strings.Trim(name, "0123456789") == "" {
		name = "user" + name
		// Truncate again after the prefix: the caller may append four
		// digits, and the result must stay within the 30 characters of
		// ValidUsername (a long all-digit local part gave 32).
		if len(name) > 24 {
			name = name[:24]
		}
	}
	return name
}
