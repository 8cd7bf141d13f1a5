package admin

import (
	"context"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
)

// accessCommands: the blacklist and the whitelist (XEP-0133 §4.11, §4.12).
// Each form shows the current list; the submission is the complete new
// list. Entries are JIDs of any form (user@domain/resource, user@domain,
// domain/resource, domain), matched in that order as XEP-0016 does; the
// lists are bidirectional: a blocked account cannot log in, and nobody on
// the server can send to a blocked JID. A non-empty whitelist blocks all it
// does not match (list the server's own domain to keep its users).
// Administrators can always log in.
func (m *Module) accessCommands() []spec {
	list := func(name, label, title, instr, field, fieldLabel string, pick func(b, w []string) []string, apply func(ctx context.Context, b, w, v []string) error) spec {
		return spec{
			name: name, label: label, title: title, instr: instr,
			fields: func(context.Context) []form.Field {
				opts := []form.Option{form.Label(fieldLabel)}
				for _, j := range pick(m.h.AccessLists()) {
					opts = append(opts, form.Value(j))
				}
				return []form.Field{form.JIDMulti(field, opts...)}
			},
			run: func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
				v := r.Values[field]
				b, w := m.h.AccessLists()
				if err := apply(ctx, b, w, v); err != nil {
					return failed("the list was not changed: %v", err), v, nil
				}
				return done("the list has %s", plural(len(v), "entry", "entries")), v, nil
			},
		}
	}
	return []spec{
		list("edit-blacklist", "Edit Blacklist", "Editing the Blacklist",
			"Fill out this form to edit the list of entities with whom communications are disallowed.",
			"blacklistjids", "The blacklist",
			func(b, _ []string) []string { return b },
			func(ctx context.Context, _, w, v []string) error { return m.h.SetAccessLists(ctx, v, w) }),
		list("edit-whitelist", "Edit Whitelist", "Editing the Whitelist",
			"Fill out this form to edit the list of entities with whom communications are allowed.",
			"whitelistjids", "The whitelist",
			func(_, w []string) []string { return w },
			func(ctx context.Context, b, _, v []string) error { return m.h.SetAccessLists(ctx, b, v) }),
	}
}
