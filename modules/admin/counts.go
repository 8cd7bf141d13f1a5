package admin

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules"
)

// population is who is registered, disabled, online, active and idle, as
// bare JIDs, sorted. Online = active + idle: a user is active when one of its
// sessions sent a stanza within admin.idle_after, idle when online and none
// did.
type population struct {
	registered, disabled, online, active, idle []string
}

// population counts who is where. Registered and disabled users need the
// store (withAccounts); online, active and idle users only the sessions, so
// the commands about them never read every account.
func (m *Module) population(ctx context.Context, withAccounts bool) (population, error) {
	var p population
	if withAccounts {
		accts, err := m.h.Store().Accounts(ctx)
		if err != nil {
			return p, err
		}
		domain := m.h.Domain().String()
		for _, a := range accts {
			j := a.Username + "@" + domain
			p.registered = append(p.registered, j)
			if a.Disabled {
				p.disabled = append(p.disabled, j)
			}
		}
	}
	window := m.h.Config().Admin.IdleAfter.D()
	now := time.Now()
	active := map[string]bool{}
	online := map[string]bool{}
	for _, s := range m.h.Sessions() {
		b := s.JID.Bare().String()
		online[b] = true
		if now.Sub(s.LastActive) <= window {
			active[b] = true
		}
	}
	for j := range online {
		p.online = append(p.online, j)
		if active[j] {
			p.active = append(p.active, j)
		} else {
			p.idle = append(p.idle, j)
		}
	}
	for _, l := range [][]string{p.online, p.active, p.idle} {
		slices.Sort(l)
	}
	return p, nil
}

// countCommands: the numbers and lists of registered, disabled, online,
// active and idle users (XEP-0133 §4.13–4.22).
func (m *Module) countCommands() []spec {
	type kind struct {
		noun, numName, numVar, numLabel, listName, listVar, listLabel string
		pick                                                          func(population) []string
		accounts                                                      bool // needs the store
		// num, when set, answers the number command without listing the
		// population (a counter the server keeps).
		num func() int
	}
	kinds := []kind{
		{"registered", "get-registered-users-num", "registeredusersnum", "The number of registered users",
			"get-registered-users-list", "registereduserjids", "The list of all users", func(p population) []string { return p.registered }, true, nil},
		{"disabled", "get-disabled-users-num", "disabledusersnum", "The number of disabled users",
			"get-disabled-users-list", "disableduserjids", "The list of all disabled users", func(p population) []string { return p.disabled }, true, nil},
		{"online", "get-online-users-num", "onlineusersnum", "The number of online users",
			"get-online-users-list", "onlineuserjids", "The list of all online users", func(p population) []string { return p.online }, false,
			func() int { return m.h.Status().OnlineUsers }},
		{"active", "get-active-users-num", "activeusersnum", "The number of active users",
			"get-active-users", "activeuserjids", "The list of active users", func(p population) []string { return p.active }, false, nil},
		// XEP-0133 §4.22's example names the idle list's field activeuserjids
		// (its registry has no idleuserjids): adhocd follows the example.
		{"idle", "get-idle-users-num", "idleusersnum", "The number of idle users",
			"get-idle-users", "activeuserjids", "The list of idle users", func(p population) []string { return p.idle }, false, nil},
	}
	var out []spec
	for _, k := range kinds {
		out = append(out, spec{
			name: k.numName, label: "Get Number of " + title(k.noun) + " Users",
			run: func(ctx context.Context, _ *adhoc.Request) (*adhoc.Result, []string, error) {
				var n int
				if k.num != nil {
					n = k.num()
				} else {
					p, err := m.population(ctx, k.accounts)
					if err != nil {
						return nil, nil, err
					}
					n = len(k.pick(p))
				}
				return &adhoc.Result{Form: form.New(modules.FormType(NS), form.Text(k.numVar, form.Label(k.numLabel), form.Value(strconv.Itoa(n))))}, nil, nil
			},
		})
		listTitle := "Requesting List of " + title(k.noun) + " Users"
		out = append(out, spec{
			name: k.listName, label: "Get List of " + title(k.noun) + " Users",
			title: listTitle, instr: "Fill out this form to request the " + k.noun + " users of this service.",
			fields: func(context.Context) []form.Field {
				return []form.Field{form.List("max_items", form.Label("Maximum number of items to show"),
					form.ListItem("25", "25"), form.ListItem("50", "50"), form.ListItem("75", "75"), form.ListItem("100", "100"),
					form.ListItem("150", "150"), form.ListItem("200", "200"), form.ListItem("None", "none"))}
			},
			run: func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
				p, err := m.population(ctx, k.accounts)
				if err != nil {
					return nil, nil, err
				}
				all := k.pick(p)
				list := all
				// max_items absent or "none": the whole list.
				if n, err := strconv.Atoi(r.Values.Get("max_items")); err == nil && n < len(list) {
					list = list[:n]
				}
				opts := []form.Option{form.Label(k.listLabel)}
				for _, j := range list {
					opts = append(opts, form.Value(j))
				}
				res := &adhoc.Result{Form: form.New(modules.FormType(NS), form.JIDMulti(k.listVar, opts...))}
				if len(list) < len(all) {
					res.Notes = []adhoc.Note{{Type: adhoc.NoteInfo, Text: "showing " + strconv.Itoa(len(list)) + " of " + strconv.Itoa(len(all))}}
				}
				return res, nil, nil
			},
		})
	}
	return out
}

func title(s string) string { return string(s[0]-'a'+'A') + s[1:] }

func splitHost(addr string) (string, string, error) { return net.SplitHostPort(addr) }
