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
	if err := s.admins.Set(ctx, stored); err != nil {
		return err
	}
	s.settingsChanged(ctx, settingsAdmins)
	return nil
}

// Sessions lists the bound sessions, in no particular order.
func (s *Server) Sessions() []modules.SessionInfo { return s.router.Sessions() }

// Logins returns how many times user logged in since the server started.
func (s *Server) Logins(user string) (int, time.Time) { return s.router.Logins(user), s.startedAt }
