// Command profserve runs the Plaza HTTP API exactly as `plaza serve` builds
// it (same config from the PLAZA_* environment, same app.New, same
// http.Server settings via App.Serve) and, on a second loopback port, the
// net/http/pprof endpoints, so a benchmark can take a CPU profile of the
// segment path without touching the application code:
//
//	PLAZA_DATA_DIR=... PLAZA_WORKERS=off go run ./bench/segments/profserve -pprof 127.0.0.1:6061
//	curl -o cpu.pprof 'http://127.0.0.1:6061/debug/pprof/profile?seconds=10'
//
// It prints "listening on http://host:port" like plaza serve. bench/segments/run.sh
// uses it for the profiling step.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"

	"plaza/internal/app"
	"plaza/internal/config"
)

func main() {
	pprofAddr := flag.String("pprof", "127.0.0.1:6061", "loopback address for /debug/pprof/")
	flag.Parse()
	if err := run(*pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "profserve:", err)
		os.Exit(1)
	}
}

func run(pprofAddr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load("serve", nil, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	if err := cfg.EnsureSecretKey(func(b []byte) error { _, err := rand.Read(b); return err }); err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	pln, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listen: %w", err)
	}
	go func() { _ = http.Serve(pln, nil) }()

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
	fmt.Printf("profserve listening on http://%s (pprof on http://%s/debug/pprof/)\n", ln.Addr(), pln.Addr())
	return a.Serve(ctx, ln)
}
