// Command adhocd is the adhocd XMPP server and its composition root: it
// loads config.yaml, sets up logging and telemetry (package metrics) and runs
// a server.Server with its options; the default modules are still chosen by
// server.New (docs/architecture.md, "What is still to move").
//
//	adhocd [--config FILE]                 run the server until SIGTERM or SIGINT;
//	                                       SIGHUP reloads admins, limits and admin.*
//	adhocd user add    [--config FILE] JID  create an account (password on stdin)
//	adhocd user passwd [--config FILE] JID  change a password (password on stdin)
//	adhocd user disable [--config FILE] JID refuse an account's logins, keeping its data
//	adhocd user enable [--config FILE] JID  let a disabled account log in again
//	adhocd user delete [--config FILE] JID  remove an account, its data and its
//	                                       items in other rosters
//	adhocd user list   [--config FILE]      list the accounts
//
// The user commands work on the store directly while the server is stopped,
// and through the server's control socket while it runs; both run package
// account's operations, so the rules are the same (a password change, a
// disable and a delete end the account's sessions).
//
// The restart and shutdown admin commands (XEP-0133) stop the server as
// SIGTERM does; a restart then executes the binary again with the same
// arguments, or exits with status 75 if it cannot, for a supervisor.
//
// In containers an administrator can be bootstrapped from the environment:
// ADHOCD_ADMIN_JID and ADHOCD_ADMIN_PASSWORD create that account at start-up
// if it does not exist yet.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/metrics"
	"github.com/adhocd/adhocd/modules/defaults"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/storage"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "adhocd:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "user" {
		return userCmd(args[1:], stdin, stdout)
	}
	fs := flag.NewFlagSet("adhocd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "config.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown command %q (want: user)", fs.Arg(0))
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
		opts = append(opts, server.WithObserver(tel.Server()), server.WithCommandObserver(tel.Commands()))
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
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
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

func userCmd(args []string, stdin io.Reader, stdout io.Writer) error {
	const usage = "usage: adhocd user add|passwd|disable|enable|delete|list [--config FILE] [JID]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	op := args[0]
	fs := flag.NewFlagSet("adhocd user "+op, flag.ContinueOnError)
	cfgPath := fs.String("config", "config.yaml", "configuration file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	req := account.Request{Op: op}
	switch op {
	case "add", "passwd", "disable", "enable", "delete":
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: adhocd user %s [--config FILE] JID", op)
		}
		if req.User, err = account.Username(fs.Arg(0), cfg.Domain); err != nil {
			return err
		}
		if op == "add" || op == "passwd" {
			if req.Password, err = readPassword(stdin); err != nil {
				return err
			}
		}
	case "list":
	default:
		return fmt.Errorf("unknown user command %q (%s)", op, usage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	resp, err := offline(ctx, cfg, req)
	if errors.Is(err, errLocked) {
		// The server holds the store: it does the work, with its sessions.
		resp, err = server.Control(ctx, cfg.Storage.Path, req)
	}
	if err == nil && resp.Error != "" {
		err = errors.New(resp.Error)
	}
	if err != nil {
		return err
	}
	for _, u := range resp.Users {
		fmt.Fprintln(stdout, u)
	}
	return nil
}

var errLocked = errors.New("store is in use")

// offline runs a request on the store directly, with the same account
// operations as the server's but no session to end, or returns errLocked
// when a running server holds the store.
func offline(ctx context.Context, cfg config.Config, req account.Request) (account.Response, error) {
	st, err := storage.Open(cfg.Storage.Path, 300*time.Millisecond)
	if err != nil {
		if strings.Contains(err.Error(), "timeout") {
			return account.Response{}, errLocked
		}
		return account.Response{}, err
	}
	defer st.Close()
	return account.New(st, cfg.Domain, cfg.Storage.SCRAMIterations, account.NoSessions{}).Do(ctx, req), nil
}

// readPassword reads one line from stdin.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on standard input")
	}
	return pw, nil
}
