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
	"time"

	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/server/account"
)

// ControlSocket is the name of the control socket in the storage folder.
// Through it `adhocd user …` changes accounts while the server holds the store.
const ControlSocket = "control.sock"

// maxControlRequest bounds one control request line.
const maxControlRequest = 64 << 10

// ControlRequest is one account operation sent over the control socket.
type ControlRequest struct {
	// Op is add, delete, passwd or list.
	Op       string `json:"op"`
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
}

// ControlResponse answers a ControlRequest.
type ControlResponse struct {
	Error string   `json:"error,omitempty"`
	Users []string `json:"users,omitempty"`
}

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
			var req ControlRequest
			resp := ControlResponse{}
			if err := json.Unmarshal(line, &req); err != nil {
				resp.Error = "malformed request: " + err.Error()
			} else {
				resp = s.control(context.Background(), req)
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

// control runs one account operation on the live server.
func (s *Server) control(ctx context.Context, req ControlRequest) ControlResponse {
	var err error
	var users []string
	switch req.Op {
	case "add":
		err = s.AddUser(ctx, req.User, req.Password)
	case "delete":
		err = s.DeleteUser(ctx, req.User)
	case "passwd":
		err = s.SetPassword(ctx, req.User, req.Password)
	case "list":
		users, err = s.Users(ctx)
	default:
		err = fmt.Errorf("unknown operation %q", req.Op)
	}
	if err != nil {
		return ControlResponse{Error: err.Error()}
	}
	return ControlResponse{Users: users}
}

// Control sends one request to a running server's control socket in dir.
func Control(ctx context.Context, dir string, req ControlRequest) (ControlResponse, error) {
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

// AddUser creates an account (jid is user@domain or a bare username).
func (s *Server) AddUser(ctx context.Context, jidOrUser, password string) error {
	user, err := account.Username(jidOrUser, s.domain.String())
	if err != nil {
		return err
	}
	return account.Add(ctx, s.store, user, password, s.cfg.Storage.SCRAMIterations)
}

// SetPassword changes an account's password and ends its sessions, which
// authenticated with the old one.
func (s *Server) SetPassword(ctx context.Context, jidOrUser, password string) error {
	user, err := account.Username(jidOrUser, s.domain.String())
	if err != nil {
		return err
	}
	if err := account.SetPassword(ctx, s.store, user, password, s.cfg.Storage.SCRAMIterations); err != nil {
		return err
	}
	s.EndSessions(user, "", "the password was changed")
	return nil
}

// DeleteUser ends the account's sessions and removes it with all its data.
func (s *Server) DeleteUser(ctx context.Context, jidOrUser string) error {
	user, err := account.Username(jidOrUser, s.domain.String())
	if err != nil {
		return err
	}
	if _, err := s.store.Account(ctx, user); err != nil {
		return err
	}
	s.EndSessions(user, "", "the account was deleted")
	return s.store.DeleteAccount(ctx, user)
}

// Users lists the bare JIDs of every account.
func (s *Server) Users(ctx context.Context) ([]string, error) {
	accts, err := s.store.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(accts))
	for _, a := range accts {
		out = append(out, a.Username+"@"+s.domain.String())
	}
	return out, nil
}

// EndSessions closes an account's sessions (one resource, or all when res is
// empty) with a not-authorized stream error saying why, and returns how many
// it closed.
func (s *Server) EndSessions(user, res, reason string) int {
	n := 0
	for _, c := range s.sessions.of(user) {
		if res == "" || c.addr.Resourcepart() == res {
			c.closeWith(streamErr(stream.NotAuthorized, reason))
			// Unbound now, not when the reader notices, so that what the
			// administrator runs next already sees the session gone.
			if c.bound.CompareAndSwap(true, false) {
				s.onUnbound(c)
			}
			n++
		}
	}
	return n
}
