package server

import (
	"context"
	"maps"
	"time"

	"mellium.im/xmpp/jid"

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

// isLocal reports whether j is of the server's domain or of a domain one of
// its modules serves: the requesters that may run the ad-hoc commands not
// marked adhoc.Command.Remote. Every other domain is remote (federation).
func (s *Server) isLocal(j jid.JID) bool {
	d := j.Domainpart()
	if d == s.domain.Domainpart() {
		return true
	}
	served := s.served.Load()
	return served != nil && (*served)[d]
}

// addServed adds a started module's service domains to those isLocal
// counts, in the canonical form the router keys them by.
func (s *Server) addServed(domains []string) {
	next := map[string]bool{}
	if cur := s.served.Load(); cur != nil {
		maps.Copy(next, *cur)
	}
	for _, d := range domains {
		if j, err := jid.New("", d, ""); err == nil {
			next[j.Domainpart()] = true
		}
	}
	s.served.Store(&next)
}

// Sessions lists the bound sessions, in no particular order.
func (s *Server) Sessions() []modules.SessionInfo { return s.router.Sessions() }

// Logins returns how many times user logged in since the server started.
func (s *Server) Logins(user string) (int, time.Time) { return s.router.Logins(user), s.startedAt }
