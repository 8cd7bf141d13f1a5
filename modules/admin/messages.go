package admin

import (
	"context"
	"strings"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
)

// messageCommands: the announcement to online users (XEP-0133 §4.23).
func (m *Module) messageCommands() []spec {
	return []spec{{
		name: "announce", label: "Send Announcement to Online Users", title: "Making an Announcement",
		instr: "Fill out this form to make an announcement to all active users of this service.",
		fields: func(context.Context) []form.Field {
			return []form.Field{form.TextMulti("announcement", form.Label("Announcement"), form.Required)}
		},
		run: func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
			text := strings.Join(r.Values["announcement"], "\n")
			n := m.broadcast(ctx, text, false)
			return done("sent the announcement to %s", plural(n, "session", "sessions")), nil, nil
		},
	}}
}

// broadcast sends a message from the server JID to every bound session
// (with local, those of this replica alone) and returns to how many it
// went.
func (m *Module) broadcast(ctx context.Context, text string, local bool) int {
	n := 0
	for _, s := range m.h.Sessions() {
		if local && s.Replica != "" {
			continue
		}
		if m.message(ctx, s.JID, "Announcement", text) {
			n++
		}
	}
	return n
}
