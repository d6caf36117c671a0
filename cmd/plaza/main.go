// Command plaza is the Plaza server: `plaza serve` runs the API (and, by
// default, the background workers) on the embedded defaults or on
// PostgreSQL, Redis and S3.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"plaza/internal/account"
	"plaza/internal/app"
	"plaza/internal/config"
	"plaza/internal/db"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "plaza:", err)
			os.Exit(1)
		}
	}
}

const usage = `Usage: plaza <command> [flags]

Commands:
  serve     run the HTTP API (and background jobs unless PLAZA_WORKERS=off)
  worker    work background jobs only (the scaled-out shape)
  migrate   apply database migrations and exit
  user      create --email E --password P [--username U] [--staff]
            set-staff --email E [--off]
            delete --email E   (the account and everything it made)
  version   print the version

Run "plaza serve --help" for the configuration variables.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "worker":
		return worker(ctx, rest, getenv, stderr)
	case "migrate":
		return migrate(ctx, rest, getenv, stdout, stderr)
	case "user":
		return user(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "plaza", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func load(name string, args []string, getenv func(string) string, stderr io.Writer) (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(name, args, getenv, stderr)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.EnsureSecretKey(func(b []byte) error { _, err := rand.Read(b); return err }); err != nil {
		return nil, nil, err
	}
	return cfg, newLogger(cfg, stderr), nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, log, err := load("serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	// Listen first: with PLAZA_ADDR=host:0 the default public URL (media
	// URLs, the trusted origin) must name the port actually bound.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	cfg.Bound(ln.Addr().String())
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		ln.Close()
		return err
	}
	defer a.Close()
	if cfg.Workers == "inline" {
		if err := a.StartWorkers(ctx); err != nil {
			ln.Close()
			return err
		}
	}
	fmt.Fprintf(stdout, "plaza %s listening on http://%s (database %s, workers %s)\n", version, ln.Addr(), redactURL(cfg.DatabaseURL), cfg.Workers)
	return a.Serve(ctx, ln)
}

func worker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, log, err := load("worker", args, getenv, stderr)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.StartWorkers(ctx); err != nil {
		return err
	}
	log.Info("worker started")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return a.StopWorkers(sctx)
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load("migrate", args, getenv, stderr)
	if err != nil {
		return err
	}
	d, err := db.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := app.Migrate(ctx, d); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied to", redactURL(cfg.DatabaseURL))
	return nil
}

func user(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "set-staff" && args[0] != "delete") {
		fmt.Fprint(stderr, usage)
		return errors.New("user needs create, set-staff or delete")
	}
	sub := args[0]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "email address")
	password := fs.String("password", "", "password (create)")
	username := fs.String("username", "", "username (create; derived from the email when empty)")
	staff := fs.Bool("staff", false, "make the user staff (create)")
	off := fs.Bool("off", false, "withdraw staff rights (set-staff)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *email == "" || (sub == "create" && *password == "") {
		return errors.New("user " + sub + ": --email" + map[bool]string{true: " and --password are", false: " is"}[sub == "create"] + " required")
	}
	// The configuration flags are not for this command; the environment is.
	cfg, log, err := load("user", nil, getenv, stderr)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	if sub == "delete" {
		norm, _ := account.NormalizeEmail(*email)
		u, err := a.Accounts.Store().UserByEmail(ctx, norm)
		if errors.Is(err, db.ErrNotFound) {
			return fmt.Errorf("no user with email %s", *email)
		}
		if err != nil {
			return err
		}
		if err := a.Accounts.DeleteUser(ctx, u.ID, "", false); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s (id %d)\n", u.Username, u.ID)
		return nil
	}
	if sub == "set-staff" {
		norm, _ := account.NormalizeEmail(*email)
		u, err := a.Accounts.Store().UserByEmail(ctx, norm)
		if errors.Is(err, db.ErrNotFound) {
			return fmt.Errorf("no user with email %s", *email)
		}
		if err != nil {
			return err
		}
		if err := a.Accounts.Store().SetStaff(ctx, u.ID, !*off); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s (id %d) staff=%v\n", u.Username, u.ID, !*off)
		return nil
	}
	u, err := a.Accounts.CreateUser(ctx, *email, *password, *username, *staff)
	var verr *account.ValidationError
	switch {
	case errors.Is(err, account.ErrEmailTaken):
		return fmt.Errorf("a user with email %s already exists", *email)
	case errors.As(err, &verr):
		var parts []string
		for f, msgs := range verr.Fields {
			parts = append(parts, f+": "+strings.Join(msgs, " "))
		}
		return fmt.Errorf("cannot create user: %s", strings.Join(parts, "; "))
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "created user %s (id %d, email %s, staff=%v, active)\n", u.Username, u.ID, u.Email, u.IsStaff)
	return nil
}

// redactURL hides a password in a database URL before it is printed.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return u
	}
	cred := rest[:at]
	if user, _, hasPass := strings.Cut(cred, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + rest[at+1:]
	}
	return u
}
