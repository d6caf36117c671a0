package account_test

import (
	"encoding/base64"
	"math"
	"strings"
	"testing"

	"plaza/internal/account"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestEncodeUID(t *testing.T) {
	t.Parallel()
	for id, want := range map[int64]string{1: "MQ", 12: "MTI", 123: "MTIz", 1000: "MTAwMA"} {
		if got := account.EncodeUID(id); got != want {
			t.Errorf("EncodeUID(%d) = %q, want %q (Django's urlsafe_base64_encode)", id, got, want)
		}
	}
	for _, id := range []int64{1, 9, 10, 99, 100, 12345, 1 << 40, math.MaxInt64} {
		s := account.EncodeUID(id)
		if strings.ContainsAny(s, "=+/") {
			t.Errorf("EncodeUID(%d) = %q is not unpadded URL-safe base64", id, s)
		}
		if got, ok := account.DecodeUID(s); !ok || got != id {
			t.Errorf("DecodeUID(EncodeUID(%d)) = %d, %v", id, got, ok)
		}
	}
}

func TestDecodeUID(t *testing.T) {
	t.Parallel()
	// Padding, as some clients keep it, is accepted.
	for s, want := range map[string]int64{"MQ": 1, "MQ==": 1, "MTI=": 12, "MTIz": 123} {
		if got, ok := account.DecodeUID(s); !ok || got != want {
			t.Errorf("DecodeUID(%q) = %d, %v; want %d, true", s, got, ok, want)
		}
	}
	for name, s := range map[string]string{
		"empty":          "",
		"not base64":     "!!",
		"trailing junk":  "MQ!",
		"std alphabet":   "MQ/",
		"letters":        b64("abc"),
		"zero":           b64("0"),
		"negative":       b64("-1"),
		"plus sign":      b64("+1"),
		"leading zero":   b64("01"),
		"leading zeros":  b64("0007"),
		"leading space":  b64(" 1"),
		"trailing space": b64("1 "),
		"decimal point":  b64("1.0"),
		"hex":            b64("0x1"),
		"overflow":       b64("9223372036854775808"),
		"too long":       strings.Repeat("MQ", 17),
		"only padding":   "==",
	} {
		if id, ok := account.DecodeUID(s); ok {
			t.Errorf("%s: DecodeUID(%q) = %d, true; want rejected", name, s, id)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice@example.com":          "alice@example.com",
		"  Alice@Example.COM \t":     "alice@example.com",
		"a.b+tag@mail.example.org":   "a.b+tag@mail.example.org",
		"o'brien_x-y@sub.example.co": "o'brien_x-y@sub.example.co",
		"x@y.io":                     "x@y.io",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com": strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com",
	} {
		got, ok := account.NormalizeEmail(in)
		if !ok || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q, true", in, got, ok, want)
		}
	}
	for _, in := range []string{
		"",
		"   ",
		"alice",
		"alice@",
		"@example.com",
		"alice@example",
		"alice@.example.com",
		"alice@example.com.",
		"alice@@example.com",
		"al ice@example.com",
		"alice@exa mple.com",
		`"al ice"@example.com`,
		"Alice <alice@example.com>",
		"<alice@example.com>",
		"alice@example.com (comment)",
		"alice@example.com, bob@example.com",
		"alice@example.com\nbcc: x@y.com",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", // 255 bytes
	} {
		if got, ok := account.NormalizeEmail(in); ok {
			t.Errorf("NormalizeEmail(%q) = %q, true; want rejected", in, got)
		}
	}
}

func TestValidUsername(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"abc", "Alice", "alice_1", "a.b-c", "_x_", "1a2", "user123", strings.Repeat("z", 30)} {
		if !account.ValidUsername(s) {
			t.Errorf("ValidUsername(%q) = false, want true", s)
		}
	}
	for _, s := range []string{"", "ab", strings.Repeat("z", 31), "123", "0000000", "al ice", "alice!", "a/b", "a@b", "ålice", "alice\n", "../x"} {
		if account.ValidUsername(s) {
			t.Errorf("ValidUsername(%q) = true, want false", s)
		}
	}
}
