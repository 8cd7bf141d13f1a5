package admin

import (
	"context"
	"errors"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/storage"
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
			run: m.eachAccount(func(ctx context.Context, acc *account.Service, j jid.JID) error {
				return acc.Delete(ctx, j.String())
			}, "deleted"),
		},
		{
			name: "disable-user", label: "Disable User", title: "Disabling a User", instr: "Fill out this form to disable a user.",
			fields: jids("The Jabber ID(s) to disable"),
			run: m.eachAccount(func(ctx context.Context, acc *account.Service, j jid.JID) error {
				_, err := acc.Disable(ctx, j.String())
				return err
			}, "disabled"),
		},
		{
			name: "reenable-user", label: "Re-Enable User", title: "Re-Enable a User", instr: "Fill out this form to re-enable a user.",
			fields: jids("The Jabber ID(s) to re-enable"),
			run: m.eachAccount(func(ctx context.Context, acc *account.Service, j jid.JID) error {
				return acc.Enable(ctx, j.String())
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
	acc, err := m.accounts()
	if err != nil {
		return nil, target, err
	}
	err = acc.Add(ctx, js[0].String(), pw)
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
func (m *Module) eachAccount(fn func(ctx context.Context, acc *account.Service, j jid.JID) error, verb string) func(context.Context, *adhoc.Request) (*adhoc.Result, []string, error) {
	return func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
		js, err := m.targets(ctx, r, "accountjids", false, true)
		if err != nil {
			res, err := targetResult(err)
			return res, r.Values["accountjids"], err
		}
		acc, err := m.accounts()
		if err != nil {
			return nil, strs(js), err
		}
		for _, j := range js {
			if err := fn(ctx, acc, j); err != nil {
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
// which logged in with the old one; an administrator changing their own
// password keeps the session they ran the command from.
func (m *Module) changePassword(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
	js, err := m.targets(ctx, r, "accountjid", false, true)
	if err != nil {
		res, err := targetResult(err)
		return res, r.Values["accountjid"], err
	}
	acc, err := m.accounts()
	if err != nil {
		return nil, strs(js), err
	}
	keep := ""
	if r.Requester.Bare().Equal(js[0].Bare()) {
		keep = r.Requester.Resourcepart()
	}
	ended, err := acc.SetPassword(ctx, js[0].String(), r.Values.Get("password"), keep)
	if err != nil {
		return nil, strs(js), err
	}
	return done("changed the password of %s and ended %s", js[0], plural(ended, "other session", "other sessions")), strs(js), nil
}

// accountHost is what the user commands need of the server beyond
// modules.Host: its account operations, where the rules about sessions and
// what a deletion removes live.
type accountHost interface {
	Accounts() *account.Service
}

// accounts returns the server's account operations.
func (m *Module) accounts() (*account.Service, error) {
	h, ok := m.h.(accountHost)
	if !ok {
		return nil, errors.New("admin: the server offers no account operations (Accounts)")
	}
	return h.Accounts(), nil
}
