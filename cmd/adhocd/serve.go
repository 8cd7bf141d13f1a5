package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics"
	"github.com/adhocd/adhocd/modules/defaults"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/storage"
)

// serveCmd runs the server until SIGTERM or SIGINT (or the restart and
// shutdown admin commands).
func serveCmd(args []string, _ io.Reader, _, stderr io.Writer) error {
	fs, cfgPath := newFlags("serve", "[--config FILE]", stderr)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unknown command %q", rest[0])
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The restart and shutdown admin commands end the run as a signal does.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var restart atomic.Bool
	// The composition root: the default modules, in their start order.
	opts := []server.Option{server.WithLogger(log), server.WithModules(defaults.Modules()...), server.WithReload(func() (config.Config, error) {
		return config.Load(*cfgPath)
	}), server.WithLifecycle(func(r bool) {
		restart.Store(r)
		cancel(errors.New("stopped by an administrator"))
	})}
	if j, pw := os.Getenv("ADHOCD_ADMIN_JID"), os.Getenv("ADHOCD_ADMIN_PASSWORD"); j != "" && pw != "" {
		admin, err := jid.Parse(j)
		if err != nil {
			return fmt.Errorf("ADHOCD_ADMIN_JID %q: %w", j, err)
		}
		opts = append(opts, server.WithBootstrapAdmin(admin, pw))
	}
	if cfg.Debug.PprofListen != "" {
		stopPprof, err := servePprof(cfg.Debug.PprofListen, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	var tel *metrics.Telemetry
	if cfg.Metrics.Listen != "" || cfg.OTel.Exporter != "none" {
		if tel, err = metrics.New(ctx, cfg, log); err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tel.Shutdown(sctx); err != nil {
				log.Warn("metrics shutdown", "err", err)
			}
		}()
		opts = append(opts, server.WithObserver(tel.Server()), server.WithCommandObserver(tel.Commands()), server.WithMeterProvider(tel.MeterProvider()))
	}
	srv, err := server.New(cfg, opts...)
	if err != nil {
		return err
	}
	if tel != nil && cfg.Metrics.Listen != "" {
		// /healthz answers from now on; /readyz once the server serves.
		if err := tel.Start(cfg.Metrics.Listen, srv.Ready); err != nil {
			return err
		}
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	if tel != nil {
		if st, ok := srv.Commands().Store().(adhoc.StatsReporter); ok {
			if err := tel.ObserveStore(st); err != nil {
				return err
			}
		}
		if u, ok := srv.Store().(storage.OfflineUsageReporter); ok {
			if err := tel.ObserveOffline(u, func() int64 { return srv.Config().Limits.MaxOfflineTotalBytes }); err != nil {
				return err
			}
		}
	}
	// SIGHUP reloads config.yaml (admins, limits, admin section).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if _, err := srv.Reload(ctx); err != nil {
				log.Error("reload", "err", err)
			}
		}
	}()
	<-ctx.Done()
	log.Info("shutting down", "cause", context.Cause(ctx), "restart", restart.Load())
	// The drain, then as long again as a shutdown without one may take
	// (streams that do not read, the store's last writes).
	sctx, scancel := context.WithTimeout(context.Background(), srv.Config().Shutdown.Drain.D()+20*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if restart.Load() {
		return reexec(log)
	}
	return nil
}

// exitRestartFailed is the exit status when a restart cannot execute the
// binary again: a supervisor (systemd, Kubernetes) restarts the process.
const exitRestartFailed = 75

// reexec replaces the process with a fresh run of the same binary and
// arguments, after the store was closed.
func reexec(log *slog.Logger) error {
	exe, err := os.Executable()
	if err == nil {
		log.Info("restarting", "binary", exe)
		err = syscall.Exec(exe, os.Args, os.Environ())
	}
	log.Error("restart failed; exiting for the supervisor to restart", "err", err, "status", exitRestartFailed)
	os.Exit(exitRestartFailed)
	return nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
