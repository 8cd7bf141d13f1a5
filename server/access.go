package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/storage"
)

// Store keys of the access lists edit-blacklist and edit-whitelist keep.
const (
	settingBlacklist = "blacklist"
	settingWhitelist = "whitelist"
)

// accessLists decide who may log in and be contacted (XEP-0133 §4.11,
// §4.12). An entry is a JID of any form and matches in XEP-0016's order:
// user@domain/resource, user@domain, domain/resource, domain. A JID matched
// by the blacklist is refused; when the whitelist is not empty, a JID it
// does not match is refused too. Administrators may always log in, so that
// a list cannot lock them out of the commands that edit it.
type accessLists struct {
	mu           sync.RWMutex
	black, white []jid.JID
}

func matches(entry, j jid.JID) bool {
	switch {
	case entry.Localpart() != "" && entry.Resourcepart() != "":
		return entry.Equal(j)
	case entry.Localpart() != "":
		return entry.Equal(j.Bare())
	case entry.Resourcepart() != "":
		return entry.Domain().Equal(j.Domain()) && entry.Resourcepart() == j.Resourcepart()
	}
	return entry.Equal(j.Domain())
}

// allowed reports whether j passes both lists.
func (a *accessLists) allowed(j jid.JID) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, e := range a.black {
		if matches(e, j) {
			return false
		}
	}
	if len(a.white) == 0 {
		return true
	}
	for _, e := range a.white {
		if matches(e, j) {
			return true
		}
	}
	return false
}

func (a *accessLists) set(black, white []jid.JID) {
	a.mu.Lock()
	a.black, a.white = black, white
	a.mu.Unlock()
}

func (a *accessLists) get() (black, white []string) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, j := range a.black {
		black = append(black, j.String())
	}
	for _, j := range a.white {
		white = append(white, j.String())
	}
	return black, white
}

// loadAccess reads the stored lists.
func (s *Server) loadAccess(ctx context.Context) error {
	var lists [2][]jid.JID
	for i, key := range []string{settingBlacklist, settingWhitelist} {
		raw, err := s.store.Setting(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var entries []string
		if err := json.Unmarshal(raw, &entries); err != nil {
			return fmt.Errorf("server: stored %s: %w", key, err)
		}
		if lists[i], err = parseEntries(entries); err != nil {
			return fmt.Errorf("server: stored %s: %w", key, err)
		}
	}
	s.access.set(lists[0], lists[1])
	return nil
}

func parseEntries(entries []string) ([]jid.JID, error) {
	out := make([]jid.JID, 0, len(entries))
	for _, e := range entries {
		j, err := jid.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("%q is not a JID: %w", e, err)
		}
		if !slices.ContainsFunc(out, j.Equal) {
			out = append(out, j)
		}
	}
	return out, nil
}

// AccessLists returns the blacklist and the whitelist.
func (s *Server) AccessLists() (black, white []string) { return s.access.get() }

// SetAccessLists stores and applies new lists: sessions of accounts they no
// longer allow are ended at once (administrators' are kept).
func (s *Server) SetAccessLists(ctx context.Context, black, white []string) error {
	b, err := parseEntries(black)
	if err != nil {
		return fmt.Errorf("server: blacklist: %w", err)
	}
	w, err := parseEntries(white)
	if err != nil {
		return fmt.Errorf("server: whitelist: %w", err)
	}
	for key, list := range map[string][]jid.JID{settingBlacklist: b, settingWhitelist: w} {
		entries := make([]string, len(list))
		for i, j := range list {
			entries[i] = j.String()
		}
		raw, _ := json.Marshal(entries)
		if err := s.store.PutSetting(ctx, key, raw); err != nil {
			return err
		}
	}
	s.access.set(b, w)
	for _, c := range s.sessions.all() {
		if !s.IsAdmin(c.addr) && !s.access.allowed(c.addr) {
			s.EndSessions(c.addr.Localpart(), c.addr.Resourcepart(), "blocked by the server's access lists")
		}
	}
	return nil
}

// accessCheck is the authenticator's Check: a local account the lists
// refuse may not log in, unless it is an administrator.
func (s *Server) accessCheck(_ context.Context, a storage.Account) *auth.Failure {
	j, err := jid.New(a.Username, s.domain.String(), "")
	if err != nil || s.IsAdmin(j) || s.access.allowed(j) {
		return nil
	}
	return &auth.Failure{Condition: auth.NotAuthorized, Text: "this account is blocked by the server's access lists"}
}
