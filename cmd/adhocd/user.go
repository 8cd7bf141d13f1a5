package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/router"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/storage/backend"
)

const userUsage = "add|passwd|disable|enable|delete|list [JID] [--config FILE]"

// userCmd runs an account operation: on the store directly while no server
// holds it, else through the running server's control socket.
func userCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: adhocd user %s", userUsage)
	}
	op := args[0]
	fs, cfgPath := newFlags("user "+op, "[JID] [--config FILE]", stderr)
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	req := account.Request{Op: op}
	switch op {
	case "add", "passwd", "disable", "enable", "delete":
		if len(rest) != 1 {
			return usagef("usage: adhocd user %s JID [--config FILE]", op)
		}
	case "list":
		if len(rest) != 0 {
			return usagef("usage: adhocd user list [--config FILE]")
		}
	default:
		return usagef("unknown user command %q (usage: adhocd user %s)", op, userUsage)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if op != "list" {
		if req.User, err = account.Username(rest[0], cfg.Domain); err != nil {
			return err
		}
	}
	if op == "add" || op == "passwd" {
		if req.Password, err = readPassword(stdin, stderr); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var resp account.Response
	if cfg.Storage.Backend == config.BackendPostgres {
		// The database is shared: no lock tells whether a server runs
		// here. One that answers on the control socket does the work,
		// with its sessions; without one, the database directly.
		resp, err = server.Control(ctx, cfg.Storage.Path, req)
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			resp, err = offline(ctx, cfg, req, 0)
		}
	} else {
		resp, err = offline(ctx, cfg, req, 300*time.Millisecond)
	}
	if errors.Is(err, storage.ErrLocked) {
		// The server holds the store: it does the work, with its sessions.
		resp, err = server.Control(ctx, cfg.Storage.Path, req)
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			// No server answers: another `adhocd user` holds the store for
			// a moment (accounts made in parallel); wait for it.
			resp, err = offline(ctx, cfg, req, 10*time.Second)
		}
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

// offline runs a request on the store (of either backend) directly, with
// the same account operations as the server's, or returns
// storage.ErrLocked when another process has held the store for wait.
// With no server here there is no session here to end; in a cluster the
// account's sessions on every replica are ended through the directory
// (this process joins the cluster for the moment it takes).
func offline(ctx context.Context, cfg config.Config, req account.Request, wait time.Duration) (account.Response, error) {
	st, err := backend.Open(ctx, cfg, backend.Options{Wait: wait})
	if err != nil {
		return account.Response{}, err
	}
	defer st.Close()
	var sessions account.Sessions = account.NoSessions{}
	if cfg.Cluster.Enabled() && req.Op != "add" && req.Op != "enable" && req.Op != "list" {
		o, err := server.ClusterOptions(cfg, server.ReplicaID("adhocd-user"), slog.New(slog.DiscardHandler))
		if err != nil {
			return account.Response{}, err
		}
		cl, err := cluster.Open(ctx, o)
		if err != nil {
			return account.Response{}, fmt.Errorf("reach the cluster to end the account's sessions: %w", err)
		}
		defer cl.Close()
		sessions = clusterSessions{cl: cl, domain: cfg.Domain}
	}
	return account.New(st, cfg.Domain, cfg.Storage.SCRAMIterations, sessions).Do(ctx, req), nil
}

// readPassword reads a password: from a terminal without echo, asked twice;
// otherwise one line of stdin.
func readPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		first, err := readNoEcho(f, prompt, "Password: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		again, err := readNoEcho(f, prompt, "Password again: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(first) != string(again) {
			return "", errors.New("the passwords differ")
		}
		if len(first) == 0 {
			return "", errors.New("empty password")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password on standard input")
	}
	return pw, nil
}

// clusterSessions are the account's sessions on the replicas of a cluster,
// seen from outside it: they are ended through the directory; contacts
// online on the replicas are not told of a deletion (no roster push) until
// they fetch their roster again.
type clusterSessions struct {
	account.NoSessions
	cl     *cluster.Cluster
	domain string
}

// EndSessions implements account.Sessions.
func (c clusterSessions) EndSessions(user, except, reason string) int {
	return router.EndRemote(context.Background(), c.cl, c.domain, user, except, reason)
}
