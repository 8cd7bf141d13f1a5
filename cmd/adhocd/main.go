// Command adhocd is the adhocd XMPP server.
//
//	adhocd [--config FILE]                 run the server until SIGTERM or SIGINT
//	adhocd user add    [--config FILE] JID  create an account (password on stdin)
//	adhocd user passwd [--config FILE] JID  change a password (password on stdin)
//	adhocd user delete [--config FILE] JID  remove an account and its data
//	adhocd user list   [--config FILE]      list the accounts
//
// The user commands work on the store directly while the server is stopped,
// and through the server's control socket while it runs.
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
	"syscall"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/server/account"
	"github.com/adhocd/adhocd/server/config"
	"github.com/adhocd/adhocd/server/storage"
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
	if j := os.Getenv("ADHOCD_ADMIN_JID"); j != "" && os.Getenv("ADHOCD_ADMIN_PASSWORD") != "" {
		// The bootstrapped account is an administrator like those in admins.
		bare, err := jid.Parse(j)
		if err != nil {
			return fmt.Errorf("ADHOCD_ADMIN_JID %q: %w", j, err)
		}
		cfg.Admins = append(cfg.Admins, bare.Bare().String())
	}
	srv, err := server.New(cfg, server.WithLogger(log))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	if err := bootstrapAdmin(ctx, srv, log); err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	<-ctx.Done()
	log.Info("shutting down", "cause", context.Cause(ctx))
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// bootstrapAdmin creates ADHOCD_ADMIN_JID with ADHOCD_ADMIN_PASSWORD if both
// are set and the account does not exist. The account is an administrator
// whether or not config.yaml lists it.
func bootstrapAdmin(ctx context.Context, srv *server.Server, log *slog.Logger) error {
	j, pw := os.Getenv("ADHOCD_ADMIN_JID"), os.Getenv("ADHOCD_ADMIN_PASSWORD")
	if j == "" || pw == "" {
		return nil
	}
	err := srv.AddUser(ctx, j, pw)
	switch {
	case err == nil:
		log.Info("bootstrapped admin account", "jid", j)
	case errors.Is(err, storage.ErrExists):
	default:
		return fmt.Errorf("bootstrap admin %s: %w", j, err)
	}
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
	if len(args) == 0 {
		return errors.New("usage: adhocd user add|passwd|delete|list [--config FILE] [JID]")
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
	req := server.ControlRequest{Op: op}
	switch op {
	case "add", "passwd", "delete":
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: adhocd user %s [--config FILE] JID", op)
		}
		if req.User, err = account.Username(fs.Arg(0), cfg.Domain); err != nil {
			return err
		}
		if op != "delete" {
			if req.Password, err = readPassword(stdin); err != nil {
				return err
			}
		}
	case "list":
	default:
		return fmt.Errorf("unknown user command %q (want add, passwd, delete or list)", op)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	resp, err := offline(ctx, cfg, req)
	if errors.Is(err, errLocked) {
		// The server holds the store: ask it to do the work.
		if resp, err = server.Control(ctx, cfg.Storage.Path, req); err == nil && resp.Error != "" {
			err = errors.New(resp.Error)
		}
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

// offline runs a request on the store directly, or returns errLocked when a
// running server holds it.
func offline(ctx context.Context, cfg config.Config, req server.ControlRequest) (server.ControlResponse, error) {
	st, err := storage.Open(cfg.Storage.Path, 300*time.Millisecond)
	if err != nil {
		if strings.Contains(err.Error(), "timeout") {
			return server.ControlResponse{}, errLocked
		}
		return server.ControlResponse{}, err
	}
	defer st.Close()
	var resp server.ControlResponse
	switch req.Op {
	case "add":
		err = account.Add(ctx, st, req.User, req.Password, cfg.Storage.SCRAMIterations)
	case "passwd":
		err = account.SetPassword(ctx, st, req.User, req.Password, cfg.Storage.SCRAMIterations)
	case "delete":
		err = st.DeleteAccount(ctx, req.User)
	case "list":
		var accts []storage.Account
		accts, err = st.Accounts(ctx)
		for _, a := range accts {
			resp.Users = append(resp.Users, a.Username+"@"+cfg.Domain)
		}
	}
	return resp, err
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
