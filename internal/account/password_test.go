package account_test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"plaza/internal/account"
)

// phc is the PHC string format of argon2id with a 16-byte salt and a 32-byte
// key in unpadded standard base64.
var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)

func TestHashPasswordPHCFormat(t *testing.T) {
	t.Parallel()
	h, err := account.HashPassword("s3cret pass", testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	m := phc.FindStringSubmatch(h)
	if m == nil {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	if m[1] != "1024" || m[2] != "1" || m[3] != "1" {
		t.Errorf("hash %q records m=%s,t=%s,p=%s, want m=1024,t=1,p=1", h, m[1], m[2], m[3])
	}
	// The recorded key is argon2id of the password with the recorded salt.
	salt, _ := base64.RawStdEncoding.DecodeString(m[4])
	key, _ := base64.RawStdEncoding.DecodeString(m[5])
	if want := argon2.IDKey([]byte("s3cret pass"), salt, 1, 1024, 1, 32); string(key) != string(want) {
		t.Error("stored key is not argon2id(password, salt)")
	}
}

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	h, err := account.HashPassword("s3cret pass", testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"s3cret pass", true},
		{"s3cret pas", false},
		{"S3cret pass", false},
		{"s3cret pass ", false},
		{"", false},
	} {
		ok, err := account.CheckPassword(tc.pw, h)
		if err != nil || ok != tc.want {
			t.Errorf("CheckPassword(%q) = %v, %v; want %v, nil", tc.pw, ok, err, tc.want)
		}
	}
}

func TestHashPasswordUsesFreshSalts(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 5 {
		h, err := account.HashPassword("same password", testArgon2)
		if err != nil {
			t.Fatal(err)
		}
		salt := strings.Split(h, "$")[4]
		if seen[salt] {
			t.Fatalf("salt %s used twice", salt)
		}
		seen[salt] = true
		if ok, err := account.CheckPassword("same password", h); !ok || err != nil {
			t.Fatalf("CheckPassword = %v, %v", ok, err)
		}
	}
}

func TestCheckPasswordReadsParamsFromHash(t *testing.T) {
	t.Parallel()
	// A hash made with other costs than any default verifies: the costs
	// come from the string, not from the caller.
	p := account.Argon2Params{MemoryKiB: 2048, Time: 3, Threads: 2}
	h, err := account.HashPassword("pw with params", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h, "$m=2048,t=3,p=2$") {
		t.Fatalf("hash %q does not record its params", h)
	}
	if ok, err := account.CheckPassword("pw with params", h); !ok || err != nil {
		t.Fatalf("CheckPassword = %v, %v", ok, err)
	}

	// A hash built independently (as another argon2id implementation
	// would write it) verifies too.
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("interop"), salt, 2, 4096, 1, 32)
	b64 := base64.RawStdEncoding
	ext := fmt.Sprintf("$argon2id$v=19$m=4096,t=2,p=1$%s$%s", b64.EncodeToString(salt), b64.EncodeToString(key))
	if ok, err := account.CheckPassword("interop", ext); !ok || err != nil {
		t.Fatalf("CheckPassword(external hash) = %v, %v", ok, err)
	}
	// Changing a recorded cost changes the result: the params are used.
	for _, edited := range []string{
		strings.Replace(ext, "m=4096", "m=2048", 1),
		strings.Replace(ext, "t=2", "t=1", 1),
		strings.Replace(ext, "p=1", "p=2", 1),
	} {
		if ok, err := account.CheckPassword("interop", edited); ok || err != nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want false, nil", edited, ok, err)
		}
	}
}

func TestCheckPasswordMalformedHashes(t *testing.T) {
	t.Parallel()
	good, err := account.HashPassword("pw", testArgon2)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..., salt, key
	join := func(p ...string) string { return strings.Join(p, "$") }
	for name, h := range map[string]string{
		"empty":           "",
		"plain text":      "pw",
		"bcrypt":          "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":         join("", "argon2i", parts[2], parts[3], parts[4], parts[5]),
		"argon2d":         join("", "argon2d", parts[2], parts[3], parts[4], parts[5]),
		"old version":     join("", "argon2id", "v=16", parts[3], parts[4], parts[5]),
		"no version":      join("", "argon2id", parts[3], parts[4], parts[5]),
		"bad params":      join("", "argon2id", parts[2], "m=x,t=1,p=1", parts[4], parts[5]),
		"negative memory": join("", "argon2id", parts[2], "m=-1,t=1,p=1", parts[4], parts[5]),
		"threads >255":    join("", "argon2id", parts[2], "m=1024,t=1,p=256", parts[4], parts[5]),
		"zero time":       join("", "argon2id", parts[2], "m=1024,t=0,p=1", parts[4], parts[5]),
		"zero threads":    join("", "argon2id", parts[2], "m=1024,t=1,p=0", parts[4], parts[5]),
		"bad salt":        join("", "argon2id", parts[2], parts[3], "!!not base64!!", parts[5]),
		"bad key":         join("", "argon2id", parts[2], parts[3], parts[4], "***"),
		"empty key":       join("", "argon2id", parts[2], parts[3], parts[4], ""),
		"extra part":      good + "$extra",
		"missing key":     join("", "argon2id", parts[2], parts[3], parts[4]),
	} {
		ok, err := account.CheckPassword("pw", h)
		if err == nil || ok {
			t.Errorf("%s: CheckPassword(%q) = %v, %v; want false and an error", name, h, ok, err)
		}
	}
}

func TestDefaultArgon2(t *testing.T) {
	t.Parallel()
	d := account.DefaultArgon2
	if d.MemoryKiB < 19*1024 || d.Time < 2 || d.Threads < 1 {
		t.Fatalf("DefaultArgon2 = %+v, below OWASP's m=19MiB,t=2,p=1", d)
	}
	h, err := account.HashPassword("production cost", d)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", d.MemoryKiB, d.Time, d.Threads); !strings.HasPrefix(h, want) {
		t.Fatalf("hash %q does not start with %q", h, want)
	}
	if ok, err := account.CheckPassword("production cost", h); !ok || err != nil {
		t.Fatalf("CheckPassword = %v, %v", ok, err)
	}
	if ok, _ := account.CheckPassword("production cosT", h); ok {
		t.Fatal("wrong password accepted")
	}
}
