package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/storage"
)

// Store keys of the access lists edit-blacklist and edit-whitelist keep.
const (
	settingBlacklist = "blacklist"
	settingWhitelist = "whitelist"
)

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
	s.router.Access().Set(lists[0], lists[1])
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
func (s *Server) AccessLists() (black, white []string) { return s.router.Access().Get() }

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
	s.router.Access().Set(b, w)
	s.router.EndBlocked(s.IsAdmin)
	s.settingsChanged(ctx, settingsAccess)
	return nil
}

// accessCheck is the authenticator's Check: a local account the lists
// refuse may not log in, unless it is an administrator.
func (s *Server) accessCheck(_ context.Context, a storage.Account) *auth.Failure {
	j, err := jid.New(a.Username, s.domain.String(), "")
	if err != nil || s.IsAdmin(j) || s.router.Access().Allowed(j) {
		return nil
	}
	return &auth.Failure{Condition: auth.NotAuthorized, Text: "this account is blocked by the server's access lists"}
}
