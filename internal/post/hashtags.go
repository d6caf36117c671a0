package post

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Hashtag limits.
const (
	maxTagLen      = 64
	maxTagsPerPost = 30
)

// ParseHashtags returns the distinct lowercased #tags of text, in order of
// appearance. A tag starts after a '#' that does not follow a letter,
// digit or '_' (so "a#b" and "&#123;" are not tags), consists of letters,
// digits and '_', and contains at least one letter.
func ParseHashtags(text string) []string {
	var tags []string
	seen := map[string]bool{}
	prev := ' '
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == '#' && !isTagRune(prev) && prev != '&' && prev != '#' {
			j := i + size
			for j < len(text) {
				r2, s2 := utf8.DecodeRuneInString(text[j:])
				if !isTagRune(r2) {
					break
				}
				j += s2
			}
			tag := strings.ToLower(text[i+size : j])
			if n := utf8.RuneCountInString(tag); n > 0 && n <= maxTagLen && strings.IndexFunc(tag, unicode.IsLetter) >= 0 && !seen[tag] {
				seen[tag] = true
				tags = append(tags, tag)
				if len(tags) == maxTagsPerPost {
					return tags
				}
			}
			if j > i+size {
				r, _ = utf8.DecodeLastRuneInString(text[:j])
				prev = r
				i = j
				continue
			}
		}
		prev = r
		i += size
	}
	return tags
}

func isTagRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// NormalizeTag turns a tag from a URL ("#Go", "go") into its stored form,
// or "" when it cannot be a tag.
func NormalizeTag(s string) string {
	s = strings.ToLower(strings.TrimPrefix(s, "#"))
	if s == "" || utf8.RuneCountInString(s) > maxTagLen || strings.IndexFunc(s, func(r rune) bool { return !isTagRune(r) }) >= 0 {
		return ""
	}
	return s
}
