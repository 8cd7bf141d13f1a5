package mam

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"slices"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Archiving preferences (XEP-0313 §6): a default (always, never, roster:
// only contacts in the roster) and JIDs always or never archived, kept in
// the account's user data.
type prefs struct {
	Default string   `json:"default"`
	Always  []string `json:"always,omitempty"`
	Never   []string `json:"never,omitempty"`
}

const (
	prefsBucket = "mam"
	prefsKey    = "prefs"
	// maxPrefJIDs bounds the JIDs of one list.
	maxPrefJIDs = 1000
)

// prefsTTL is how long an account's preferences are kept in memory: read
// on the path of every message otherwise. A change on this server replaces
// them at once; the TTL bounds how long a change made elsewhere (another
// replica, once there are several) takes to count.
const prefsTTL = 30 * time.Second

func (m *Module) prefs(ctx context.Context, user string) (prefs, error) {
	if p, ok := m.prefsCache.Get(user); ok {
		return p, nil
	}
	p := prefs{Default: "always"}
	b, err := m.store.UserDatum(ctx, user, prefsBucket, prefsKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return p, err
	default:
		if err := json.Unmarshal(b, &p); err != nil {
			return p, err
		}
	}
	m.prefsCache.Add(user, p)
	return p, nil
}

// wanted applies the preferences to a message with the JID with.
func (m *Module) wanted(ctx context.Context, user, bare string) bool {
	p, err := m.prefs(ctx, user)
	if err != nil {
		return true
	}
	switch {
	case slices.Contains(p.Never, bare):
		return false
	case slices.Contains(p.Always, bare):
		return true
	case p.Default == "never":
		return false
	case p.Default == "roster":
		_, err := m.store.RosterItem(ctx, user, bare)
		return err == nil
	}
	return true
}

// tokens renders the preferences.
func (p prefs) tokens() []xml.Token {
	st := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: "prefs"}, Attr: []xml.Attr{{Name: xml.Name{Local: "default"}, Value: p.Default}}}
	toks := []xml.Token{st}
	list := func(local string, jids []string) {
		l := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: local}}
		toks = append(toks, l)
		for _, j := range jids {
			e := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: "jid"}}
			toks = append(toks, e, xml.CharData(j), e.End())
		}
		toks = append(toks, l.End())
	}
	list("always", p.Always)
	list("never", p.Never)
	return append(toks, st.End())
}

// setPrefs stores new preferences and answers them.
func (m *Module) setPrefs(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	el := &wire.Element{Start: iq.Payload, Inner: iq.Inner}
	p := prefs{Default: el.Attr("default")}
	switch p.Default {
	case "always", "never", "roster":
	default:
		return nil, badRequest("default is always, never or roster")
	}
	read := func(local string) ([]string, error) {
		var out []string
		l := el.Sub(xml.Name{Space: nsMAM, Local: local})
		if l == nil {
			return nil, nil
		}
		for _, e := range l.Children(xml.Name{Space: nsMAM, Local: "jid"}) {
			j, err := jid.Parse(wire.TextOf(append([]xml.Token{e.Start}, append(e.Inner, e.Start.End())...)))
			if err != nil {
				return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
			}
			if !slices.Contains(out, j.Bare().String()) {
				out = append(out, j.Bare().String())
			}
		}
		if len(out) > maxPrefJIDs {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable, Text: map[string]string{"en": "at most 1000 JIDs per list"}}
		}
		return out, nil
	}
	var err error
	if p.Always, err = read("always"); err != nil {
		return nil, err
	}
	if p.Never, err = read("never"); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	err = m.store.UpdateUserData(ctx, iq.From.Localpart(), prefsBucket, prefsKey, func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: prefsKey, Value: b}}, nil
	})
	if errors.Is(err, storage.ErrNoSpace) {
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	}
	if err != nil {
		return nil, err
	}
	m.prefsCache.Add(iq.From.Localpart(), p)
	return modules.Tokens(p.tokens()), nil
}
