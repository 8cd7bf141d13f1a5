package admin

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"hash/fnv"
	"strings"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
)

// motd is the stored message of the day; Version changes with every edit so
// that each user gets each version once.
type motd struct {
	Text    string `json:"text"`
	Version int64  `json:"version"`
}

func (m *Module) loadMOTD(ctx context.Context) (motd, bool, error) {
	raw, err := m.h.Store().Setting(ctx, storage.SettingMOTD)
	if errors.Is(err, storage.ErrNotFound) {
		return motd{}, false, nil
	}
	if err != nil {
		return motd{}, false, err
	}
	var v motd
	if err := json.Unmarshal(raw, &v); err != nil {
		return motd{}, false, err
	}
	return v, true, nil
}

// motdCommands: the message of the day and the welcome message (XEP-0133
// §4.24–4.28). A message of the day is sent at once to users online when it
// is set or edited, and to every other user once, at its next login (initial
// presence) after the change. The welcome message goes to accounts created
// while it is set, at their first login.
func (m *Module) motdCommands() []spec {
	current := func(ctx context.Context, key string) []form.Option {
		var opts []form.Option
		text := ""
		if key == storage.SettingMOTD {
			if v, ok, _ := m.loadMOTD(ctx); ok {
				text = v.Text
			}
		} else if raw, err := m.h.Store().Setting(ctx, key); err == nil {
			text = string(raw)
		}
		if text != "" {
			for _, l := range strings.Split(text, "\n") {
				opts = append(opts, form.Value(l))
			}
		}
		return opts
	}
	setMOTD := func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
		n, err := m.setMOTD(ctx, strings.Join(r.Values["motd"], "\n"), time.Now().UnixNano())
		if err != nil {
			return nil, nil, err
		}
		return done("the message of the day is set; %s online got it now", plural(n, "session", "sessions")), nil, nil
	}

	return []spec{
		{
			name: "set-motd", label: "Set Message of the Day", title: "Setting the Message of the Day", instr: "Fill out this form to set the message of the day.",
			fields: func(context.Context) []form.Field {
				return []form.Field{form.TextMulti("motd", form.Label("Message of the Day"), form.Required)}
			},
			run: setMOTD,
		},
		{
			name: "edit-motd", label: "Edit Message of the Day", title: "Editing the Message of the Day", instr: "Fill out this form to edit the message of the day.",
			fields: func(ctx context.Context) []form.Field {
				return []form.Field{form.TextMulti("motd", append([]form.Option{form.Label("Message of the Day"), form.Required}, current(ctx, storage.SettingMOTD)...)...)}
			},
			run: setMOTD,
		},
		{
			name: "delete-motd", label: "Delete Message of the Day",
			run: func(ctx context.Context, _ *adhoc.Request) (*adhoc.Result, []string, error) {
				if err := m.h.Store().PutSetting(ctx, storage.SettingMOTD, nil); err != nil {
					return nil, nil, err
				}
				return done("the message of the day is deleted"), nil, nil
			},
		},
		{
			name: "set-welcome", label: "Set Welcome Message", title: "Setting Welcome Message", instr: "Fill out this form to set the welcome message for this service.",
			fields: func(ctx context.Context) []form.Field {
				return []form.Field{form.TextMulti("welcome", append([]form.Option{form.Label("Welcome Message"), form.Required}, current(ctx, storage.SettingWelcome)...)...)}
			},
			run: func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
				if err := m.h.Store().PutSetting(ctx, storage.SettingWelcome, []byte(strings.Join(r.Values["welcome"], "\n"))); err != nil {
					return nil, nil, err
				}
				return done("new accounts will get the welcome message at their first login"), nil, nil
			},
		},
		{
			name: "delete-welcome", label: "Delete Welcome Message",
			run: func(ctx context.Context, _ *adhoc.Request) (*adhoc.Result, []string, error) {
				if err := m.h.Store().PutSetting(ctx, storage.SettingWelcome, nil); err != nil {
					return nil, nil, err
				}
				return done("the welcome message is deleted"), nil, nil
			},
		},
	}
}

// SessionOnline implements modules.OnlineHook: when a session comes online,
// it delivers the welcome message to a new account and the message of the
// day if this account has not had it.
func (m *Module) SessionOnline(ctx context.Context, s modules.Session) {
	session := s.JID()
	user := session.Localpart()
	var welcome bool
	err := m.h.Store().UpdateAccount(ctx, user, func(a *storage.Account) error {
		welcome, a.WelcomePending = a.WelcomePending, false
		return nil
	})
	if err != nil {
		return
	}
	if raw, err := m.h.Store().Setting(ctx, storage.SettingWelcome); welcome && err == nil {
		m.message(ctx, session, "Welcome", string(raw))
	}
	if v, ok, err := m.loadMOTD(ctx); err == nil && ok {
		m.deliverMOTD(ctx, session, v)
	}
}

// deliverMOTD sends the message of the day to a session unless its account
// already had this version. The version is claimed in the store first, so
// that two sessions logging in at once do not both deliver it.
func (m *Module) deliverMOTD(ctx context.Context, session jid.JID, v motd) bool {
	claimed := false
	err := m.h.Store().UpdateAccount(ctx, session.Localpart(), func(a *storage.Account) error {
		claimed = a.MOTDSeen != v.Version
		a.MOTDSeen = v.Version
		return nil
	})
	if err != nil || !claimed {
		return false
	}
	return m.message(ctx, session, "Message of the Day", v.Text)
}

// message sends a headline from the server JID to one session.
func (m *Module) message(ctx context.Context, to jid.JID, subject, text string) bool {
	msg := stanza.Message{To: to, From: m.h.Domain(), Type: stanza.HeadlineMessage}
	body := xmlstream.MultiReader(
		xmlstream.Wrap(xmlstream.Token(xml.CharData(subject)), xml.StartElement{Name: xml.Name{Local: "subject"}}),
		xmlstream.Wrap(xmlstream.Token(xml.CharData(text)), xml.StartElement{Name: xml.Name{Local: "body"}}),
	)
	return m.h.Send(ctx, msg.Wrap(body)) == nil
}

// setMOTD stores a new message of the day and delivers it at once to every
// available session (each account claims the version once); it returns how
// many sessions got it.
func (m *Module) setMOTD(ctx context.Context, text string, version int64) (int, error) {
	v := motd{Text: text, Version: version}
	raw, _ := json.Marshal(v)
	if err := m.h.Store().PutSetting(ctx, storage.SettingMOTD, raw); err != nil {
		return 0, err
	}
	n := 0
	claimed := map[string]bool{}
	for _, s := range m.h.Sessions() {
		if !s.Available {
			continue
		}
		user := s.JID.Localpart()
		if c, seen := claimed[user]; seen {
			if c && m.message(ctx, s.JID, "Message of the Day", v.Text) {
				n++
			}
			continue
		}
		claimed[user] = m.deliverMOTD(ctx, s.JID, v)
		if claimed[user] {
			n++
		}
	}
	return n, nil
}

// configMOTD applies admin.motd from config.yaml when it is set and differs
// from the message of the day in force. Its version comes from the text,
// not the clock: replicas of a cluster that start together with the same
// admin.motd store the same version, so that each account gets it once
// rather than once per replica.
func (m *Module) configMOTD(ctx context.Context, cfg config.Config) {
	text := cfg.Admin.MOTD
	if text == "" {
		return
	}
	if cur, ok, err := m.loadMOTD(ctx); err != nil || (ok && cur.Text == text) {
		return
	}
	h := fnv.New64a()
	h.Write([]byte(text))
	if _, err := m.setMOTD(ctx, text, int64(h.Sum64()>>1)|1); err != nil {
		m.log.Error("apply admin.motd", "err", err)
	}
}
