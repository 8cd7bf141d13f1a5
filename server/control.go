package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
)

// ControlSocket is the name of the control socket in the storage folder.
// Through it `adhocd user …` changes accounts while the server holds the store.
const ControlSocket = "control.sock"

// maxControlRequest bounds one control request line.
const maxControlRequest = 64 << 10

// listenControl opens the control socket (owner-only) in the storage folder.
func (s *Server) listenControl() (net.Listener, error) {
	path := filepath.Join(s.cfg.Storage.Path, ControlSocket)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("server: control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("server: control socket: %w", err)
	}
	return ln, nil
}

func (s *Server) serveControl(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReaderSize(c, 4096)
			line, err := readLine(r, maxControlRequest)
			if err != nil {
				return
			}
			var req account.Request
			var resp ControlResponse
			switch err := json.Unmarshal(line, &req); {
			case err != nil:
				resp.Error = "malformed request: " + err.Error()
			case req.Op == opStatus:
				resp.Figures = s.StatusFigures()
				s.auditControl(c, account.Request{Op: opStatus}, account.Response{})
			default:
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				resp.Response = s.Accounts().Do(ctx, req)
				cancel()
				s.auditControl(c, req, resp.Response)
			}
			_ = json.NewEncoder(c).Encode(resp)
		}()
	}
}

func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		if len(out) > max {
			return nil, errors.New("control request too long")
		}
		if !isPrefix {
			return out, nil
		}
	}
}

// opStatus is the control request for the status report.
const opStatus = "status"

// ControlResponse is what the control socket answers: an account
// operation's response, or the status report.
type ControlResponse struct {
	account.Response
	Figures []modules.Figure `json:"figures,omitempty"`
}

// auditControl writes the audit line the admin commands write (modules/admin)
// for an operation that came through the control socket (an account
// operation, or the status report, which has no target), naming the local
// user that asked.
func (s *Server) auditControl(c net.Conn, req account.Request, resp account.Response) {
	by := "the control socket"
	if uid, ok := peerUID(c); ok {
		by = "uid " + strconv.Itoa(uid) + " on the control socket"
	}
	outcome := "completed"
	if resp.Error != "" {
		outcome = "failed: " + resp.Error
	}
	var targets []string
	if req.User != "" {
		targets = []string{req.User}
	}
	modules.LogAdminAction(s.log, by, req.Op, targets, outcome)
}

// ControlStatus asks a running server's control socket in dir for its
// status report.
func ControlStatus(ctx context.Context, dir string) ([]modules.Figure, error) {
	resp, err := control(ctx, dir, account.Request{Op: opStatus})
	if err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return nil, errors.New(resp.Error)
	}
	return resp.Figures, nil
}

// Control sends one account request to a running server's control socket in
// dir.
func Control(ctx context.Context, dir string, req account.Request) (account.Response, error) {
	resp, err := control(ctx, dir, req)
	return resp.Response, err
}

func control(ctx context.Context, dir string, req account.Request) (ControlResponse, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", filepath.Join(dir, ControlSocket))
	if err != nil {
		return ControlResponse{}, fmt.Errorf("server: control: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return ControlResponse{}, fmt.Errorf("server: control: %w", err)
	}
	var resp ControlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return ControlResponse{}, fmt.Errorf("server: control: %w", err)
	}
	return resp, nil
}

// Accounts returns the account operations on the server's store (open
// between Start and Shutdown), which end and tell the live sessions as the
// rules of package account say.
func (s *Server) Accounts() *account.Service {
	return account.New(s.store, s.domain.String(), s.cfg.Storage.SCRAMIterations, liveSessions{s})
}

// Accounts implements the admin module's account host.
func (h *host) Accounts() *account.Service { return h.s.Accounts() }

// AddUser creates an account (jid is user@domain or a bare username).
func (s *Server) AddUser(ctx context.Context, jidOrUser, password string) error {
	return s.Accounts().Add(ctx, jidOrUser, password)
}

// EndSessions closes an account's sessions (one resource, or all when res is
// empty) with a not-authorized stream error saying why, and returns how many
// it closed.
func (s *Server) EndSessions(user, res, reason string) int {
	return s.endSessions(user, func(r string) bool { return res == "" || r == res }, reason)
}

// endSessions closes the sessions of user whose resource end reports true.
func (s *Server) endSessions(user string, end func(resource string) bool, reason string) int {
	return s.router.EndSessions(user, end, reason)
}

// liveSessions is the running server as package account sees it.
type liveSessions struct{ s *Server }

var _ account.Sessions = liveSessions{}

// EndSessions implements account.Sessions.
func (l liveSessions) EndSessions(user, except, reason string) int {
	return l.s.endSessions(user, func(r string) bool { return except == "" || r != except }, reason)
}

// ContactRemoved implements account.Sessions (roster.go).
func (l liveSessions) ContactRemoved(ctx context.Context, deleted jid.JID, r storage.RemovedItem) {
	l.s.router.ContactRemoved(ctx, deleted, r)
}

// AccountCreated implements account.Sessions: the modules' account hooks
// run.
func (l liveSessions) AccountCreated(ctx context.Context, created jid.JID) {
	for _, h := range l.s.accountHooks {
		h.AccountCreated(ctx, created)
	}
}

// AccountDeleted implements account.Sessions: the modules' account hooks
// run (modules/commands ends the account's ad-hoc command sessions).
func (l liveSessions) AccountDeleted(ctx context.Context, deleted jid.JID) {
	for _, h := range l.s.accountHooks {
		h.AccountDeleted(ctx, deleted)
	}
}
