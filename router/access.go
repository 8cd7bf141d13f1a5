package router

import (
	"sync"

	"mellium.im/xmpp/jid"
)

// AccessLists decide who may log in and be contacted (XEP-0133 §4.11,
// §4.12). An entry is a JID of any form and matches in XEP-0016's order:
// user@domain/resource, user@domain, domain/resource, domain. A JID matched
// by the blacklist is refused; when the whitelist is not empty, a JID it
// does not match is refused too. Administrators may always log in, so that
// a list cannot lock them out of the commands that edit it.
type AccessLists struct {
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

// Allowed reports whether j passes both lists.
func (a *AccessLists) Allowed(j jid.JID) bool {
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

// Set replaces both lists.
func (a *AccessLists) Set(black, white []jid.JID) {
	a.mu.Lock()
	a.black, a.white = black, white
	a.mu.Unlock()
}

// Get returns both lists, as JIDs in their string form.
func (a *AccessLists) Get() (black, white []string) {
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
