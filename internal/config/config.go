// Package config reads Plaza's configuration from PLAZA_* environment
// variables and command-line flags, and validates it up front so that a bad
// value stops the start with one line naming the variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is everything the binary needs to build its components.
type Config struct {
	Env                   string // "development" or "production"
	Addr                  string
	DataDir               string
	DatabaseURL           string
	RedisURL              string
	RedisPrefix           string
	StorageURL            string
	S3AccessKey           string
	S3SecretKey           string
	SMTPURL               string
	MailFrom              string
	SecretKey             string
	PublicURL             string
	FrontendURL           string
	ActivationURL         string // template with {FRONTEND_URL}, {uid}, {token}
	ResetURL              string
	TrustedOrigins        []string
	TrustedProxies        []*net.IPNet
	CookieSecure          bool
	VideoResolutions      []string
	Workers               string // "inline" or "off"
	ExposeActivationToken bool
	RateLimits            bool
	AccessTokenTTL        time.Duration
	RefreshTokenTTL       time.Duration
	ActivationTokenTTL    time.Duration
	ResetTokenTTL         time.Duration
	MaxBodyBytes          int64
	MaxImageBytes         int64
	MaxMultipartBytes     int64
	MaxUploadBytes        int64
	UploadExpiry          time.Duration
	FFmpeg                string
	FFprobe               string
	MaxVideoDuration      time.Duration
	TranscodeTimeout      time.Duration
	TranscodeWorkers      int
	JobRescueAfter        time.Duration
	ShutdownTimeout       time.Duration
	CacheTTL              time.Duration
	LogLevel              string
	LogFormat             string

	// publicURLFromAddr is set when PublicURL is the default built from
	// Addr, so that Bound can correct it to the port actually bound.
	publicURLFromAddr bool
}

// setting describes one variable: its name, default, help, and how it lands
// in Config. The table drives the environment, the flags and --help alike.
type setting struct {
	env   string
	def   string
	help  string
	apply func(c *Config, v string) error
}

func settings() []setting {
	str := func(dst func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *dst(c) = v; return nil }
	}
	dur := func(dst func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return errors.New("takes a positive duration such as 30m or 168h")
			}
			*dst(c) = d
			return nil
		}
	}
	boolean := func(dst func(*Config) *bool) func(*Config, string) error {
		return func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("takes true or false")
			}
			*dst(c) = b
			return nil
		}
	}
	return []setting{
		{"PLAZA_ENV", "development", "development or production (production refuses an unset secret key)", func(c *Config, v string) error {
			if v != "development" && v != "production" {
				return errors.New("takes development or production")
			}
			c.Env = v
			return nil
		}},
		{"PLAZA_ADDR", "127.0.0.1:8000", "host:port the HTTP server listens on", func(c *Config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return errors.New("takes host:port, e.g. 127.0.0.1:8000")
			}
			c.Addr = v
			return nil
		}},
		{"PLAZA_DATA_DIR", "./data", "directory for the SQLite file, local media, outbox and generated secret", str(func(c *Config) *string { return &c.DataDir })},
		{"PLAZA_DATABASE_URL", "sqlite://{DATA_DIR}/plaza.db", "sqlite://path or postgres://user@host/db", func(c *Config, v string) error {
			if !strings.HasPrefix(v, "sqlite://") && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				return errors.New("takes sqlite://path or postgres://user@host:5432/db")
			}
			c.DatabaseURL = v
			return nil
		}},
		{"PLAZA_REDIS_URL", "", "redis://host:6379/0 for pub/sub and rate limits shared by several processes", func(c *Config, v string) error {
			if v != "" && !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
				return errors.New("takes redis://host:port/db")
			}
			c.RedisURL = v
			return nil
		}},
		{"PLAZA_REDIS_PREFIX", "plaza:", "prefix of every Redis key and channel (several deployments can share one Redis)", str(func(c *Config) *string { return &c.RedisPrefix })},
		{"PLAZA_STORAGE_URL", "file://{DATA_DIR}/media", "file://dir or s3://bucket?endpoint=...&region=...", func(c *Config, v string) error {
			if !strings.HasPrefix(v, "file://") && !strings.HasPrefix(v, "s3://") {
				return errors.New("takes file://dir or s3://bucket?endpoint=host:port&region=r")
			}
			c.StorageURL = v
			return nil
		}},
		{"PLAZA_S3_ACCESS_KEY", "", "S3 access key", str(func(c *Config) *string { return &c.S3AccessKey })},
		{"PLAZA_S3_SECRET_KEY", "", "S3 secret key", str(func(c *Config) *string { return &c.S3SecretKey })},
		{"PLAZA_SMTP_URL", "", "smtp://user:pass@host:port or smtps://...; unset writes mail to {DATA_DIR}/outbox", func(c *Config, v string) error {
			if v != "" {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
					return errors.New("takes smtp://[user:pass@]host[:port] or smtps://[user:pass@]host[:port]")
				}
			}
			c.SMTPURL = v
			return nil
		}},
		{"PLAZA_MAIL_FROM", "Plaza <no-reply@localhost>", "sender address of outgoing mail", str(func(c *Config) *string { return &c.MailFrom })},
		{"PLAZA_SECRET_KEY", "", "key that signs tokens (at least 32 characters); generated into the data dir when unset", func(c *Config, v string) error {
			if v != "" && len(v) < 32 {
				return errors.New("must be at least 32 characters")
			}
			c.SecretKey = v
			return nil
		}},
		{"PLAZA_PUBLIC_URL", "http://{ADDR}", "absolute URL clients reach this server at (media URLs are built from it)", urlSetting(func(c *Config) *string { return &c.PublicURL })},
		{"PLAZA_FRONTEND_URL", "http://127.0.0.1:5500", "URL of the frontend that activation and reset links point to", urlSetting(func(c *Config) *string { return &c.FrontendURL })},
		{"PLAZA_ACTIVATION_URL", "{FRONTEND_URL}/pages/auth/activate.html?uid={uid}&token={token}", "activation link template", linkTemplate(func(c *Config) *string { return &c.ActivationURL })},
		{"PLAZA_RESET_URL", "{FRONTEND_URL}/pages/auth/confirm_password.html?uid={uid}&token={token}", "password reset link template", linkTemplate(func(c *Config) *string { return &c.ResetURL })},
		{"PLAZA_TRUSTED_ORIGINS", "http://localhost:5500,http://127.0.0.1:5500", "comma-separated origins allowed for CORS and cookie-authenticated writes (PLAZA_PUBLIC_URL is always trusted)", func(c *Config, v string) error {
			c.TrustedOrigins = nil
			for _, o := range splitList(v) {
				u, err := url.Parse(o)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
					return fmt.Errorf("takes origins like https://example.com; %q is not one", o)
				}
				c.TrustedOrigins = append(c.TrustedOrigins, u.Scheme+"://"+u.Host)
			}
			return nil
		}},
		{"PLAZA_TRUSTED_PROXIES", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed", func(c *Config, v string) error {
			c.TrustedProxies = nil
			for _, s := range splitList(v) {
				if !strings.Contains(s, "/") {
					if strings.Contains(s, ":") {
						s += "/128"
					} else {
						s += "/32"
					}
				}
				_, n, err := net.ParseCIDR(s)
				if err != nil {
					return fmt.Errorf("takes CIDRs like 10.0.0.0/8; %q is not one", s)
				}
				c.TrustedProxies = append(c.TrustedProxies, n)
			}
			return nil
		}},
		{"PLAZA_COOKIE_SECURE", "false", "mark auth cookies Secure (set true behind HTTPS)", boolean(func(c *Config) *bool { return &c.CookieSecure })},
		{"PLAZA_VIDEO_RESOLUTIONS", "360p,480p,720p,1080p", "HLS rendition ladder", func(c *Config, v string) error {
			c.VideoResolutions = nil
			for _, r := range splitList(v) {
				h, err := strconv.Atoi(strings.TrimSuffix(r, "p"))
				if !strings.HasSuffix(r, "p") || err != nil || h < 144 || h > 4320 {
					return fmt.Errorf("takes heights like 360p,720p; %q is not one", r)
				}
				c.VideoResolutions = append(c.VideoResolutions, r)
			}
			if len(c.VideoResolutions) == 0 {
				return errors.New("needs at least one resolution")
			}
			return nil
		}},
		{"PLAZA_WORKERS", "inline", "inline: serve also works background jobs; off: serve only (run plaza worker elsewhere)", func(c *Config, v string) error {
			if v != "inline" && v != "off" {
				return errors.New("takes inline or off")
			}
			c.Workers = v
			return nil
		}},
		{"PLAZA_EXPOSE_ACTIVATION_TOKEN", "false", "return the activation token from register (Videoflix compatibility; defeats the email check)", boolean(func(c *Config) *bool { return &c.ExposeActivationToken })},
		{"PLAZA_RATE_LIMITS", "on", "on, or off for deployments that limit at their gateway", func(c *Config, v string) error {
			if v != "on" && v != "off" {
				return errors.New("takes on or off")
			}
			c.RateLimits = v == "on"
			return nil
		}},
		{"PLAZA_ACCESS_TOKEN_TTL", "30m", "lifetime of access tokens", dur(func(c *Config) *time.Duration { return &c.AccessTokenTTL })},
		{"PLAZA_REFRESH_TOKEN_TTL", "168h", "lifetime of refresh tokens", dur(func(c *Config) *time.Duration { return &c.RefreshTokenTTL })},
		{"PLAZA_ACTIVATION_TOKEN_TTL", "72h", "lifetime of activation links", dur(func(c *Config) *time.Duration { return &c.ActivationTokenTTL })},
		{"PLAZA_RESET_TOKEN_TTL", "1h", "lifetime of password reset links", dur(func(c *Config) *time.Duration { return &c.ResetTokenTTL })},
		{"PLAZA_MAX_BODY_BYTES", "1048576", "largest JSON request body in bytes", func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return errors.New("takes a byte count of at least 1024")
			}
			c.MaxBodyBytes = n
			return nil
		}},
		{"PLAZA_MAX_IMAGE_BYTES", "10485760", "largest image upload (profile pictures, covers, post images) in bytes", func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return errors.New("takes a byte count of at least 1024")
			}
			c.MaxImageBytes = n
			return nil
		}},
		{"PLAZA_MAX_MULTIPART_BYTES", "104857600", "largest file sent as a plain multipart form (larger ones use /api/uploads/)", byteCount(func(c *Config) *int64 { return &c.MaxMultipartBytes }, 1024)},
		{"PLAZA_MAX_UPLOAD_BYTES", "5368709120", "largest resumable upload in bytes", byteCount(func(c *Config) *int64 { return &c.MaxUploadBytes }, 1024)},
		{"PLAZA_UPLOAD_EXPIRY", "24h", "unfinished uploads are removed after this long", dur(func(c *Config) *time.Duration { return &c.UploadExpiry })},
		{"PLAZA_FFMPEG", "ffmpeg", "ffmpeg binary", str(func(c *Config) *string { return &c.FFmpeg })},
		{"PLAZA_FFPROBE", "ffprobe", "ffprobe binary", str(func(c *Config) *string { return &c.FFprobe })},
		{"PLAZA_MAX_VIDEO_DURATION", "3h", "longest video accepted", dur(func(c *Config) *time.Duration { return &c.MaxVideoDuration })},
		{"PLAZA_TRANSCODE_TIMEOUT", "2h", "deadline of one transcode (ffmpeg is killed past it)", dur(func(c *Config) *time.Duration { return &c.TranscodeTimeout })},
		{"PLAZA_TRANSCODE_WORKERS", "1", "transcodes run at once per worker process (each uses every core)", func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return errors.New("takes a number from 1 to 64")
			}
			c.TranscodeWorkers = n
			return nil
		}},
		{"PLAZA_JOB_RESCUE_AFTER", "2h10m", "a job still running after this long is presumed lost with its worker and run again; keep it above PLAZA_TRANSCODE_TIMEOUT", dur(func(c *Config) *time.Duration { return &c.JobRescueAfter })},
		{"PLAZA_CACHE_TTL", "5s", "how long hot rows (the user behind a token, a ready video, a post's text and author) stay in memory; changes made through this server or another instance reach it at once, other changes (the CLI) within this time; 0 turns caching off", dur(func(c *Config) *time.Duration { return &c.CacheTTL })},
		{"PLAZA_SHUTDOWN_TIMEOUT", "30s", "how long shutdown waits for requests and jobs in flight", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"PLAZA_LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config, v string) error {
			if !slices.Contains([]string{"debug", "info", "warn", "error"}, v) {
				return errors.New("takes debug, info, warn or error")
			}
			c.LogLevel = v
			return nil
		}},
		{"PLAZA_LOG_FORMAT", "json", "json or text", func(c *Config, v string) error {
			if v != "json" && v != "text" {
				return errors.New("takes json or text")
			}
			c.LogFormat = v
			return nil
		}},
	}
}

func byteCount(dst func(*Config) *int64, min int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			return fmt.Errorf("takes a byte count of at least %d", min)
		}
		*dst(c) = n
		return nil
	}
}

func urlSetting(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("takes an absolute http(s) URL")
		}
		*dst(c) = strings.TrimRight(v, "/")
		return nil
	}
}

func linkTemplate(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if !strings.Contains(v, "{uid}") || !strings.Contains(v, "{token}") {
			return errors.New("must contain {uid} and {token}")
		}
		*dst(c) = v
		return nil
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// flagName turns PLAZA_DATABASE_URL into database-url.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "PLAZA_")), "_", "-")
}

// ErrHelp is returned by Load when --help was asked for; usage was printed.
var ErrHelp = flag.ErrHelp

// Load builds a Config from getenv and args (flags win over the environment).
// Errors name the variable and what it takes, in one line.
func Load(name string, args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usage)
	table := settings()
	flags := make(map[string]*string, len(table))
	for _, s := range table {
		flags[s.env] = fs.String(flagName(s.env), "", s.help+" ["+s.env+"]")
	}
	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage: plaza %s [flags]\n\nEvery flag can also be set by its environment variable.\n\n", name)
		for _, s := range table {
			fmt.Fprintf(usage, "  --%-24s %s\n      %s (default %q)\n", flagName(s.env), s.env, s.help, s.def)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := &Config{}
	values := make(map[string]string, len(table))
	for _, s := range table {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		if *flags[s.env] != "" {
			v = *flags[s.env]
		}
		values[s.env] = v
	}
	// Defaults that refer to other settings are resolved once those are known.
	expand := func(v string) string {
		v = strings.ReplaceAll(v, "{DATA_DIR}", filepath.ToSlash(values["PLAZA_DATA_DIR"]))
		v = strings.ReplaceAll(v, "{ADDR}", urlHost(values["PLAZA_ADDR"]))
		return v
	}
	c.publicURLFromAddr = strings.Contains(values["PLAZA_PUBLIC_URL"], "{ADDR}")
	for _, s := range table {
		v := values[s.env]
		if s.env != "PLAZA_ACTIVATION_URL" && s.env != "PLAZA_RESET_URL" {
			v = expand(v)
		}
		if err := s.apply(c, v); err != nil {
			return nil, fmt.Errorf("%s %s", s.env, err)
		}
	}
	c.ActivationURL = strings.ReplaceAll(c.ActivationURL, "{FRONTEND_URL}", c.FrontendURL)
	c.ResetURL = strings.ReplaceAll(c.ResetURL, "{FRONTEND_URL}", c.FrontendURL)
	if pu, err := url.Parse(c.PublicURL); err == nil {
		origin := pu.Scheme + "://" + pu.Host
		if !slices.Contains(c.TrustedOrigins, origin) {
			c.TrustedOrigins = append(c.TrustedOrigins, origin)
		}
	}
	if c.Env == "production" && c.SecretKey == "" {
		return nil, errors.New("PLAZA_SECRET_KEY must be set in production (PLAZA_ENV=production)")
	}
	return c, nil
}

// urlHost turns a listen address into the host:port of a URL that reaches
// it: an empty or unspecified host (":8000", "0.0.0.0:8000") becomes
// localhost, since "http://:8000" reaches nothing.
func urlHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr // PLAZA_ADDR's own check reports it
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Bound records the address the server really listens on. When PLAZA_PUBLIC_URL
// is the default built from PLAZA_ADDR, it and its trusted origin follow the
// bound port (PLAZA_ADDR=127.0.0.1:0 picks one at start).
func (c *Config) Bound(addr string) {
	if !c.publicURLFromAddr {
		return
	}
	old := c.PublicURL
	c.PublicURL = "http://" + urlHost(addr)
	if i := slices.Index(c.TrustedOrigins, old); i >= 0 {
		c.TrustedOrigins = slices.Delete(c.TrustedOrigins, i, i+1)
	}
	if !slices.Contains(c.TrustedOrigins, c.PublicURL) {
		c.TrustedOrigins = append(c.TrustedOrigins, c.PublicURL)
	}
}

// EnsureSecretKey fills SecretKey from {DataDir}/secret_key, generating and
// saving one on first run, so that tokens survive restarts without setup.
func (c *Config) EnsureSecretKey(random func([]byte) error) error {
	if c.SecretKey != "" {
		return nil
	}
	path := filepath.Join(c.DataDir, "secret_key")
	if b, err := os.ReadFile(path); err == nil {
		if k := strings.TrimSpace(string(b)); len(k) >= 32 {
			c.SecretKey = k
			return nil
		}
		return fmt.Errorf("config: %s holds no usable key (want at least 32 characters)", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("config: read secret key: %w", err)
	}
	buf := make([]byte, 32)
	if err := random(buf); err != nil {
		return fmt.Errorf("config: generate secret key: %w", err)
	}
	key := fmt.Sprintf("%x", buf)
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("config: create data dir: %w", err)
	}
	// Write a temporary file and hard-link it into place: the link fails if
	// another process got there first, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(c.DataDir, ".secret_key-*")
	if err != nil {
		return fmt.Errorf("config: save secret key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(key + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("config: save secret key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config: save secret key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return c.EnsureSecretKey(random)
	} else if err != nil {
		return fmt.Errorf("config: save secret key: %w", err)
	}
	c.SecretKey = key
	return nil
}

// IsSQLite reports whether the database is the embedded SQLite file.
func (c *Config) IsSQLite() bool { return strings.HasPrefix(c.DatabaseURL, "sqlite://") }
