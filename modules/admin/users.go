package admin

import (
	"context"
	"errors"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/server/account"
	"github.com/adhocd/adhocd/server/storage"
)

// userCommands: add, delete, disable, re-enable, end sessions, change
// password (XEP-0133 §4.1–4.5, §4.7).
func (m *Module) userCommands() []spec {
	jids := func(label string) func(context.Context) []form.Field {
		return func(context.Context) []form.Field {
			return []form.Field{form.JIDMulti("accountjids", form.Label(label), form.Required)}
		}
	}
	return []spec{
		{
			name: "add-user", label: "Add User", title: "Adding a User", instr: "Fill out this form to add a user.",
			fields: func(context.Context) []form.Field {
				return []form.Field{
					form.JID("accountjid", form.Label("The Jabber ID for the account to be added"), form.Required),
					form.TextPrivate("password", form.Label("The password for this account")),
					form.TextPrivate("password-verify", form.Label("Retype password")),
					form.Text("email", form.Label("Email address")),
					form.Text("given_name", form.Label("Given name")),
					form.Text("surname", form.Label("Family name")),
				}
			},
			run: m.addUser,
		},
		{
			name: "delete-user", label: "Delete User", title: "Deleting a User", instr: "Fill out this form to delete a user.",
			fields: jids("The Jabber ID(s) to delete"),
			run: m.eachAccount(func(ctx context.Context, user string) error {
				m.h.EndSessions(user, "", "the account was deleted")
				return m.h.Store().DeleteAccount(ctx, user)
			}, "deleted"),
		},
		{
			name: "disable-user", label: "Disable User", title: "Disabling a User", instr: "Fill out this form to disable a user.",
			fields: jids("The Jabber ID(s) to disable"),
			run: m.eachAccount(func(ctx context.Context, user string) error {
				if err := m.h.Store().UpdateAccount(ctx, user, func(a *storage.Account) error { a.Disabled = true; return nil }); err != nil {
					return err
				}
				m.h.EndSessions(user, "", "the account was disabled")
				return nil
			}, "disabled"),
		},
		{
			name: "reenable-user", label: "Re-Enable User", title: "Re-Enable a User", instr: "Fill out this form to re-enable a user.",
			fields: jids("The Jabber ID(s) to re-enable"),
			run: m.eachAccount(func(ctx context.Context, user string) error {
				return m.h.Store().UpdateAccount(ctx, user, func(a *storage.Account) error { a.Disabled = false; return nil })
			}, "re-enabled"),
		},
		{
			name: "end-user-session", label: "End User Session", title: "Ending a User Session", instr: "Fill out this form to end a user's session.",
			fields: jids("The Jabber ID(s) for which to end sessions"),
			run:    m.endSessions,
		},
		{
			name: "change-user-password", label: "Change User Password", title: "Changing a User Password", instr: "Fill out this form to change a user's password.",
			fields: func(context.Context) []form.Field {
				return []form.Field{
					form.JID("accountjid", form.Label("The Jabber ID for this account"), form.Required),
					form.TextPrivate("password", form.Label("The password for this account"), form.Required),
				}
			},
			run: m.changePassword,
		},
	}
}

func (m *Module) addUser(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
	js, err := m.targets(ctx, r, "accountjid", false, false)
	if err != nil {
		res, err := targetResult(err)
		return res, r.Values["accountjid"], err
	}
	target := []string{js[0].String()}
	pw, verify := r.Values.Get("password"), r.Values.Get("password-verify")
	switch {
	case pw == "":
		return failed("the account was not added: give a password"), target, nil
	case pw != verify:
		return failed("the account was not added: the password and its retyping differ"), target, nil
	}
	err = account.Add(ctx, m.h.Store(), js[0].Localpart(), pw, m.h.Config().Storage.SCRAMIterations)
	if errors.Is(err, storage.ErrExists) {
		return nil, target, stanza.Error{Type: stanza.Cancel, Condition: stanza.Conflict,
			Text: map[string]string{"en": "an account " + js[0].String() + " already exists"}}
	}
	if err != nil {
		return nil, target, err
	}
	return done("added %s", js[0]), target, nil
}

// eachAccount runs fn for every existing account of accountjids, once all
// were checked.
func (m *Module) eachAccount(fn func(ctx context.Context, user string) error, verb string) func(context.Context, *adhoc.Request) (*adhoc.Result, []string, error) {
	return func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
		js, err := m.targets(ctx, r, "accountjids", false, true)
		if err != nil {
			res, err := targetResult(err)
			return res, r.Values["accountjids"], err
		}
		for _, j := range js {
			if err := fn(ctx, j.Localpart()); err != nil {
				return nil, strs(js), err
			}
		}
		return done("%s %s", verb, plural(len(js), "account", "accounts")), strs(js), nil
	}
}

// endSessions ends one resource for a full JID, every session for a bare
// JID, and reports how many it ended (XEP-0133 §4.5).
func (m *Module) endSessions(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
	js, err := m.targets(ctx, r, "accountjids", true, false)
	if err != nil {
		res, err := targetResult(err)
		return res, r.Values["accountjids"], err
	}
	n := 0
	for _, j := range js {
		n += m.h.EndSessions(j.Localpart(), j.Resourcepart(), "the session was ended by an administrator")
	}
	return done("ended %s", plural(n, "session", "sessions")), strs(js), nil
}

// changePassword sets the password and ends the account's other sessions,
// which logged in with the old one.
func (m *Module) changePassword(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
	js, err := m.targets(ctx, r, "accountjid", false, true)
	if err != nil {
		res, err := targetResult(err)
		return res, r.Values["accountjid"], err
	}
	user := js[0].Localpart()
	if err := account.SetPassword(ctx, m.h.Store(), user, r.Values.Get("password"), m.h.Config().Storage.SCRAMIterations); err != nil {
		return nil, strs(js), err
	}
	ended := 0
	for _, s := range m.h.Sessions() {
		if s.JID.Localpart() == user && !s.JID.Equal(r.Requester) {
			ended += m.h.EndSessions(user, s.JID.Resourcepart(), "the password was changed")
		}
	}
	return done("changed the password of %s and ended %s", js[0], plural(ended, "other session", "other sessions")), strs(js), nil
}
