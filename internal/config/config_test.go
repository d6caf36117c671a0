package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// env turns a map into a getenv function.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func mustLoad(t *testing.T, args []string, vars map[string]string) *Config {
	t.Helper()
	var out bytes.Buffer
	c, err := Load("serve", args, env(vars), &out)
	if err != nil {
		t.Fatalf("Load(%q, %v): %v\noutput:\n%s", args, vars, err, out.String())
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, nil, nil)
	checks := []struct{ name, got, want string }{
		{"Env", c.Env, "development"},
		{"Addr", c.Addr, "127.0.0.1:8000"},
		{"DataDir", c.DataDir, "./data"},
		{"DatabaseURL", c.DatabaseURL, "sqlite://./data/plaza.db"},
		{"StorageURL", c.StorageURL, "file://./data/media"},
		{"RedisURL", c.RedisURL, ""},
		{"SMTPURL", c.SMTPURL, ""},
		{"SecretKey", c.SecretKey, ""},
		{"PublicURL", c.PublicURL, "http://127.0.0.1:8000"},
		{"FrontendURL", c.FrontendURL, "http://127.0.0.1:5500"},
		{"ActivationURL", c.ActivationURL, "http://127.0.0.1:5500/pages/auth/activate.html?uid={uid}&token={token}"},
		{"ResetURL", c.ResetURL, "http://127.0.0.1:5500/pages/auth/confirm_password.html?uid={uid}&token={token}"},
		{"Workers", c.Workers, "inline"},
		{"LogLevel", c.LogLevel, "info"},
		{"LogFormat", c.LogFormat, "json"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	for _, o := range []string{"http://localhost:5500", "http://127.0.0.1:5500", "http://127.0.0.1:8000"} {
		if !slices.Contains(c.TrustedOrigins, o) {
			t.Errorf("TrustedOrigins = %q, missing %q", c.TrustedOrigins, o)
		}
	}
	if len(c.TrustedOrigins) != 3 {
		t.Errorf("TrustedOrigins = %q, want exactly the two defaults and the public URL's origin", c.TrustedOrigins)
	}
	if !slices.Equal(c.VideoResolutions, []string{"360p", "480p", "720p", "1080p"}) {
		t.Errorf("VideoResolutions = %q", c.VideoResolutions)
	}
	if c.CookieSecure || c.ExposeActivationToken || !c.RateLimits {
		t.Errorf("CookieSecure=%v ExposeActivationToken=%v RateLimits=%v, want false false true",
			c.CookieSecure, c.ExposeActivationToken, c.RateLimits)
	}
	durs := []struct {
		name      string
		got, want time.Duration
	}{
		{"AccessTokenTTL", c.AccessTokenTTL, 30 * time.Minute},
		{"RefreshTokenTTL", c.RefreshTokenTTL, 7 * 24 * time.Hour},
		{"ActivationTokenTTL", c.ActivationTokenTTL, 72 * time.Hour},
		{"ResetTokenTTL", c.ResetTokenTTL, time.Hour},
		{"ShutdownTimeout", c.ShutdownTimeout, 30 * time.Second},
	}
	for _, d := range durs {
		if d.got != d.want {
			t.Errorf("%s = %v, want %v", d.name, d.got, d.want)
		}
	}
	if c.MaxBodyBytes != 1<<20 {
		t.Errorf("MaxBodyBytes = %d, want %d", c.MaxBodyBytes, 1<<20)
	}
	if !c.IsSQLite() {
		t.Error("IsSQLite() = false for the default database")
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	c := mustLoad(t, nil, map[string]string{
		"PLAZA_ADDR":              "0.0.0.0:9000",
		"PLAZA_DATA_DIR":          "/var/lib/plaza",
		"PLAZA_REDIS_URL":         "redis://cache:6379/1",
		"PLAZA_SMTP_URL":          "smtp://u:p@mail.example.com:587",
		"PLAZA_SECRET_KEY":        strings.Repeat("k", 40),
		"PLAZA_PUBLIC_URL":        "https://api.example.com/",
		"PLAZA_FRONTEND_URL":      "https://app.example.com",
		"PLAZA_TRUSTED_ORIGINS":   "https://app.example.com, https://admin.example.com/",
		"PLAZA_COOKIE_SECURE":     "true",
		"PLAZA_VIDEO_RESOLUTIONS": "240p,720p",
		"PLAZA_WORKERS":           "off",
		"PLAZA_RATE_LIMITS":       "off",
		"PLAZA_ACCESS_TOKEN_TTL":  "5m",
		"PLAZA_MAX_BODY_BYTES":    "4096",
	})
	if c.Addr != "0.0.0.0:9000" {
		t.Errorf("Addr = %q", c.Addr)
	}
	if c.DataDir != "/var/lib/plaza" {
		t.Errorf("DataDir = %q", c.DataDir)
	}
	// Defaults built from the data dir follow it.
	if c.DatabaseURL != "sqlite:///var/lib/plaza/plaza.db" {
		t.Errorf("DatabaseURL = %q, want the default inside the data dir", c.DatabaseURL)
	}
	if c.StorageURL != "file:///var/lib/plaza/media" {
		t.Errorf("StorageURL = %q, want the default inside the data dir", c.StorageURL)
	}
	if c.RedisURL != "redis://cache:6379/1" || c.SMTPURL != "smtp://u:p@mail.example.com:587" {
		t.Errorf("RedisURL = %q, SMTPURL = %q", c.RedisURL, c.SMTPURL)
	}
	if c.SecretKey != strings.Repeat("k", 40) {
		t.Errorf("SecretKey not taken from the environment")
	}
	if c.PublicURL != "https://api.example.com" {
		t.Errorf("PublicURL = %q, want it without the trailing slash", c.PublicURL)
	}
	if want := "https://app.example.com/pages/auth/activate.html?uid={uid}&token={token}"; c.ActivationURL != want {
		t.Errorf("ActivationURL = %q, want %q", c.ActivationURL, want)
	}
	if want := []string{"https://app.example.com", "https://admin.example.com", "https://api.example.com"}; !slices.Equal(c.TrustedOrigins, want) {
		t.Errorf("TrustedOrigins = %q, want %q (the defaults replaced, the public URL added)", c.TrustedOrigins, want)
	}
	if !c.CookieSecure || c.RateLimits || c.Workers != "off" {
		t.Errorf("CookieSecure=%v RateLimits=%v Workers=%q", c.CookieSecure, c.RateLimits, c.Workers)
	}
	if !slices.Equal(c.VideoResolutions, []string{"240p", "720p"}) {
		t.Errorf("VideoResolutions = %q", c.VideoResolutions)
	}
	if c.AccessTokenTTL != 5*time.Minute || c.MaxBodyBytes != 4096 {
		t.Errorf("AccessTokenTTL = %v, MaxBodyBytes = %d", c.AccessTokenTTL, c.MaxBodyBytes)
	}
}

func TestLoadFlagsOverrideEnv(t *testing.T) {
	vars := map[string]string{
		"PLAZA_ADDR":         "127.0.0.1:9000",
		"PLAZA_DATABASE_URL": "sqlite://env.db",
		"PLAZA_WORKERS":      "inline",
		"PLAZA_DATA_DIR":     "/env/dir",
	}
	c := mustLoad(t, []string{
		"--addr", "127.0.0.1:9100",
		"--database-url=postgres://plaza@db.example.com/plaza",
		"-workers", "off",
		"--data-dir", "/flag/dir",
	}, vars)
	if c.Addr != "127.0.0.1:9100" {
		t.Errorf("Addr = %q, want the flag's value", c.Addr)
	}
	if c.DatabaseURL != "postgres://plaza@db.example.com/plaza" {
		t.Errorf("DatabaseURL = %q, want the flag's value", c.DatabaseURL)
	}
	if c.IsSQLite() {
		t.Error("IsSQLite() = true for a postgres URL")
	}
	if c.Workers != "off" {
		t.Errorf("Workers = %q, want the flag's value", c.Workers)
	}
	if c.DataDir != "/flag/dir" || c.StorageURL != "file:///flag/dir/media" {
		t.Errorf("DataDir = %q, StorageURL = %q, want both from the flag", c.DataDir, c.StorageURL)
	}
	if c.PublicURL != "http://127.0.0.1:9100" {
		t.Errorf("PublicURL = %q, want the default built from --addr", c.PublicURL)
	}

	// Without the flag the environment still applies.
	c = mustLoad(t, nil, vars)
	if c.Addr != "127.0.0.1:9000" || c.DatabaseURL != "sqlite://env.db" {
		t.Errorf("Addr = %q, DatabaseURL = %q, want the environment's values", c.Addr, c.DatabaseURL)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	secret := "short-secret-value"
	cases := []struct{ name, value string }{
		{"PLAZA_ADDR", "8000"},
		{"PLAZA_ADDR", "localhost"},
		{"PLAZA_DATABASE_URL", "mysql://root@localhost/plaza"},
		{"PLAZA_DATABASE_URL", "./plaza.db"},
		{"PLAZA_REDIS_URL", "localhost:6379"},
		{"PLAZA_STORAGE_URL", "/srv/media"},
		{"PLAZA_STORAGE_URL", "gs://bucket"},
		{"PLAZA_SMTP_URL", "mail.example.com:25"},
		{"PLAZA_SMTP_URL", "http://mail.example.com"},
		{"PLAZA_SMTP_URL", "smtp://"},
		{"PLAZA_SECRET_KEY", secret},
		{"PLAZA_PUBLIC_URL", "api.example.com"},
		{"PLAZA_PUBLIC_URL", "ftp://api.example.com"},
		{"PLAZA_FRONTEND_URL", "/relative"},
		{"PLAZA_TRUSTED_ORIGINS", "https://app.example.com/path"},
		{"PLAZA_TRUSTED_ORIGINS", "app.example.com"},
		{"PLAZA_TRUSTED_PROXIES", "10.0.0.0/99"},
		{"PLAZA_COOKIE_SECURE", "maybe"},
		{"PLAZA_VIDEO_RESOLUTIONS", "abc"},
		{"PLAZA_VIDEO_RESOLUTIONS", "720"},
		{"PLAZA_VIDEO_RESOLUTIONS", ","},
		{"PLAZA_WORKERS", "x"},
		{"PLAZA_RATE_LIMITS", "x"},
		{"PLAZA_ACCESS_TOKEN_TTL", "-1s"},
		{"PLAZA_ACCESS_TOKEN_TTL", "0s"},
		{"PLAZA_REFRESH_TOKEN_TTL", "7d"},
		{"PLAZA_MAX_BODY_BYTES", "1"},
		{"PLAZA_MAX_BODY_BYTES", "1MB"},
		{"PLAZA_ENV", "staging"},
		{"PLAZA_LOG_LEVEL", "verbose"},
		{"PLAZA_LOG_FORMAT", "xml"},
		{"PLAZA_ACTIVATION_URL", "https://app.example.com/activate"},
		{"PLAZA_EXPOSE_ACTIVATION_TOKEN", "yes please"},
		{"PLAZA_TRUSTED_ORIGINS", "https://a.example.com\nhttps://b.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			var out bytes.Buffer
			c, err := Load("serve", nil, env(map[string]string{tc.name: tc.value}), &out)
			if err == nil {
				t.Fatalf("Load accepted %s=%q (config %+v)", tc.name, tc.value, c)
			}
			if c != nil {
				t.Errorf("Load returned a config beside the error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.name+" ") {
				t.Errorf("error %q does not start with the variable name %s", msg, tc.name)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q spans more than one line", msg)
			}
			if len(msg) <= len(tc.name)+1 {
				t.Errorf("error %q says nothing about what the variable takes", msg)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error %q echoes the secret key", msg)
			}
		})
	}

	// The same checks apply to values given as flags.
	_, err := Load("serve", []string{"--workers", "bogus"}, env(nil), io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "PLAZA_WORKERS ") {
		t.Errorf("Load(--workers bogus) = %v, want an error naming PLAZA_WORKERS", err)
	}
	// And an unknown flag or a stray argument is refused.
	if _, err := Load("serve", []string{"--no-such-flag"}, env(nil), io.Discard); err == nil {
		t.Error("Load accepted an unknown flag")
	}
	if _, err := Load("serve", []string{"extra"}, env(nil), io.Discard); err == nil {
		t.Error("Load accepted a stray argument")
	}
}

func TestLoadProductionNeedsSecretKey(t *testing.T) {
	_, err := Load("serve", nil, env(map[string]string{"PLAZA_ENV": "production"}), io.Discard)
	if err == nil {
		t.Fatal("production mode without PLAZA_SECRET_KEY was accepted")
	}
	if !strings.Contains(err.Error(), "PLAZA_SECRET_KEY") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q should name PLAZA_SECRET_KEY in one line", err)
	}
	key := strings.Repeat("s", 32)
	c := mustLoad(t, nil, map[string]string{"PLAZA_ENV": "production", "PLAZA_SECRET_KEY": key})
	if c.Env != "production" || c.SecretKey != key {
		t.Errorf("Env = %q, SecretKey set = %v", c.Env, c.SecretKey == key)
	}
	// Development mode leaves the key to EnsureSecretKey.
	if c := mustLoad(t, nil, map[string]string{"PLAZA_ENV": "development"}); c.SecretKey != "" {
		t.Errorf("SecretKey = %q in development without a key", c.SecretKey)
	}
}

func TestLoadHelp(t *testing.T) {
	var out bytes.Buffer
	c, err := Load("serve", []string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) || !errors.Is(err, ErrHelp) {
		t.Fatalf("Load(--help) error = %v, want flag.ErrHelp", err)
	}
	if c != nil {
		t.Error("Load(--help) returned a config")
	}
	help := out.String()
	if !strings.Contains(help, "plaza serve") {
		t.Errorf("help does not name the command:\n%s", help)
	}
	// Every variable the design documents, and every one in the table, is
	// listed with its default.
	documented := []string{
		"PLAZA_ADDR", "PLAZA_DATA_DIR", "PLAZA_DATABASE_URL", "PLAZA_REDIS_URL", "PLAZA_STORAGE_URL",
		"PLAZA_S3_ACCESS_KEY", "PLAZA_S3_SECRET_KEY", "PLAZA_SMTP_URL", "PLAZA_MAIL_FROM", "PLAZA_SECRET_KEY",
		"PLAZA_PUBLIC_URL", "PLAZA_FRONTEND_URL", "PLAZA_TRUSTED_ORIGINS", "PLAZA_COOKIE_SECURE",
		"PLAZA_VIDEO_RESOLUTIONS", "PLAZA_WORKERS", "PLAZA_EXPOSE_ACTIVATION_TOKEN", "PLAZA_RATE_LIMITS",
	}
	for _, name := range documented {
		if !strings.Contains(help, name) {
			t.Errorf("help does not list %s", name)
		}
	}
	lines := strings.Split(help, "\n")
	for _, s := range settings() {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, " "+s.env) })
		if i < 0 {
			t.Errorf("help does not list %s", s.env)
			continue
		}
		if !strings.Contains(lines[i], "--"+flagName(s.env)) {
			t.Errorf("help line %q does not show the flag --%s", lines[i], flagName(s.env))
		}
		if i+1 >= len(lines) || !strings.Contains(lines[i+1], "(default \""+s.def+"\")") {
			t.Errorf("help for %s does not show its default %q", s.env, s.def)
		}
	}
	for _, want := range []string{`(default "127.0.0.1:8000")`, `(default "./data")`, `(default "inline")`, `(default "360p,480p,720p,1080p")`} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %s", want)
		}
	}
}

func TestEnsureSecretKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	calls := 0
	random := func(b []byte) error {
		calls++
		for i := range b {
			b[i] = byte(i + 1)
		}
		return nil
	}
	c := &Config{DataDir: dir}
	if err := c.EnsureSecretKey(random); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("random called %d times, want 1", calls)
	}
	if len(c.SecretKey) < 32 {
		t.Fatalf("SecretKey = %q, want at least 32 characters", c.SecretKey)
	}
	path := filepath.Join(dir, "secret_key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %v, want 0600", perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != c.SecretKey {
		t.Errorf("file holds %q, config has %q", b, c.SecretKey)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("data dir holds %q, want only secret_key (no temporary files left)", names)
	}

	// The next start reuses it without generating another.
	c2 := &Config{DataDir: dir}
	if err := c2.EnsureSecretKey(func([]byte) error { t.Error("random called although a key exists"); return nil }); err != nil {
		t.Fatal(err)
	}
	if c2.SecretKey != c.SecretKey {
		t.Errorf("second call got %q, want the saved %q", c2.SecretKey, c.SecretKey)
	}

	// A key from the environment wins and touches nothing.
	c3 := &Config{DataDir: filepath.Join(t.TempDir(), "other"), SecretKey: strings.Repeat("e", 32)}
	if err := c3.EnsureSecretKey(func([]byte) error { t.Error("random called although a key is set"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c3.DataDir, "secret_key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file written although PLAZA_SECRET_KEY was set (stat: %v)", err)
	}

	// A failing random source is an error, not a weak key.
	c4 := &Config{DataDir: filepath.Join(t.TempDir(), "fail")}
	if err := c4.EnsureSecretKey(func([]byte) error { return errors.New("no entropy") }); err == nil {
		t.Error("EnsureSecretKey succeeded without randomness")
	}

	// A truncated key file is refused rather than used.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "secret_key"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&Config{DataDir: bad}).EnsureSecretKey(random); err == nil {
		t.Error("EnsureSecretKey accepted a 5-character key file")
	}
}

func TestEnsureSecretKeyConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh")
	const n = 8
	keys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c := &Config{DataDir: dir}
			// Every goroutine draws a different key, so disagreement shows.
			errs[i] = c.EnsureSecretKey(func(b []byte) error {
				for j := range b {
					b[j] = byte(i*31 + j)
				}
				return nil
			})
			keys[i] = c.SecretKey
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("goroutine %d: %v", i, errs[i])
		}
		if keys[i] == "" || keys[i] != keys[0] {
			t.Errorf("goroutine %d got key %q, goroutine 0 got %q", i, keys[i], keys[0])
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "secret_key"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != keys[0] {
		t.Errorf("file holds %q, goroutines agreed on %q", b, keys[0])
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only secret_key", len(entries))
	}
}

func TestDefaultPublicURLFromAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8000": "http://127.0.0.1:8000",
		":8000":          "http://localhost:8000",
		"0.0.0.0:8000":   "http://localhost:8000",
		"[::]:8000":      "http://localhost:8000",
		"[::1]:8000":     "http://[::1]:8000",
		"plaza.lan:80":   "http://plaza.lan:80",
	} {
		c := mustLoad(t, nil, map[string]string{"PLAZA_ADDR": addr})
		if c.PublicURL != want {
			t.Errorf("PLAZA_ADDR=%s: PublicURL = %q, want %q", addr, c.PublicURL, want)
		}
		if !slices.Contains(c.TrustedOrigins, want) {
			t.Errorf("PLAZA_ADDR=%s: TrustedOrigins = %q, want %q among them", addr, c.TrustedOrigins, want)
		}
	}
}

func TestBound(t *testing.T) {
	// A default public URL follows the port the server really bound.
	c := mustLoad(t, nil, map[string]string{"PLAZA_ADDR": "127.0.0.1:0"})
	c.Bound("127.0.0.1:43210")
	if c.PublicURL != "http://127.0.0.1:43210" {
		t.Errorf("PublicURL = %q after Bound", c.PublicURL)
	}
	if want := []string{"http://localhost:5500", "http://127.0.0.1:5500", "http://127.0.0.1:43210"}; !slices.Equal(c.TrustedOrigins, want) {
		t.Errorf("TrustedOrigins = %q, want %q", c.TrustedOrigins, want)
	}

	// A public URL that was set is the operator's and stays.
	c = mustLoad(t, nil, map[string]string{"PLAZA_ADDR": "0.0.0.0:0", "PLAZA_PUBLIC_URL": "https://plaza.example.com"})
	c.Bound("[::]:43210")
	if c.PublicURL != "https://plaza.example.com" {
		t.Errorf("PublicURL = %q, want the configured one kept", c.PublicURL)
	}
	if want := []string{"http://localhost:5500", "http://127.0.0.1:5500", "https://plaza.example.com"}; !slices.Equal(c.TrustedOrigins, want) {
		t.Errorf("TrustedOrigins = %q, want %q", c.TrustedOrigins, want)
	}
}
