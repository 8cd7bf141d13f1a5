package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/server/storage"
)

// settingAdmins is the store key of the administrators edit-admin keeps.
const settingAdmins = "admins"

// loadAdmins reads the stored administrators into the in-memory set, beside
// those of the configuration.
func (s *Server) loadAdmins(ctx context.Context) error {
	raw, err := s.store.Setting(ctx, settingAdmins)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var stored []string
	if err := json.Unmarshal(raw, &stored); err != nil {
		return fmt.Errorf("server: stored admins: %w", err)
	}
	s.setAdmins(stored)
	return nil
}

func (s *Server) setAdmins(stored []string) {
	s.muxMu.Lock()
	defer s.muxMu.Unlock()
	set := make(map[string]bool, len(s.cfgAdmins)+len(stored))
	for _, a := range s.cfgAdmins {
		set[a] = true
	}
	for _, a := range stored {
		set[a] = true
	}
	s.admins, s.storedAdmins = set, slices.Clone(stored)
}

// Admins returns the configured and the stored administrators.
func (s *Server) Admins() (configured, stored []string) {
	s.muxMu.RLock()
	defer s.muxMu.RUnlock()
	return slices.Clone(s.cfgAdmins), slices.Clone(s.storedAdmins)
}

// SetAdmins replaces the stored administrators (bare JIDs); those of the
// configuration stay administrators whatever is stored.
func (s *Server) SetAdmins(ctx context.Context, stored []string) error {
	norm := make([]string, 0, len(stored))
	for _, a := range stored {
		j, err := jid.Parse(a)
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			return fmt.Errorf("server: admin %q is not a bare JID", a)
		}
		if !slices.Contains(norm, j.String()) {
			norm = append(norm, j.String())
		}
	}
	slices.Sort(norm)
	raw, err := json.Marshal(norm)
	if err != nil {
		return err
	}
	if err := s.store.PutSetting(ctx, settingAdmins, raw); err != nil {
		return err
	}
	s.setAdmins(norm)
	return nil
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
