package server

import (
	"context"
	"time"

	"github.com/adhocd/adhocd/modules"
)

// loadAdmins reads the stored administrators beside those of the
// configuration.
func (s *Server) loadAdmins(ctx context.Context) error { return s.admins.Load(ctx, s.store) }

// Admins returns the configured (with the bootstrap admin) and the stored
// administrators.
func (s *Server) Admins() (configured, stored []string) { return s.admins.Lists() }

// SetAdmins replaces the stored administrators (bare JIDs); those of the
// configuration stay administrators whatever is stored.
func (s *Server) SetAdmins(ctx context.Context, stored []string) error {
	return s.admins.Set(ctx, stored)
}

// Sessions lists the bound sessions, in no particular order (callers that
// show them sort what they show: sorting here cost a tenth of a busy
// server's time for commands that only count).
func (s *Server) Sessions() []modules.SessionInfo {
	var out []modules.SessionInfo
	for _, c := range s.sessions.all() {
		c.pmu.Lock()
		info := modules.SessionInfo{
			JID: c.addr, Remote: c.raw.RemoteAddr().String(), Since: c.connected,
			LastActive: time.Unix(0, c.lastActive.Load()), Available: c.available, Priority: c.priority,
			Stanzas: c.stanzas.Load(),
		}
		c.pmu.Unlock()
		out = append(out, info)
	}
	return out
}

// Logins returns how many times user logged in since the server started.
func (s *Server) Logins(user string) (int, time.Time) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	return s.logins[user], s.startedAt
}

func (s *Server) countLogin(user string) {
	s.loginMu.Lock()
	s.logins[user]++
	s.loginMu.Unlock()
}
