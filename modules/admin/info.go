package admin

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/rosterxml"
	"github.com/adhocd/adhocd/storage"
)

// infoCommands: a user's roster, last login and statistics (XEP-0133
// §4.8–4.10).
func (m *Module) infoCommands() []spec {
	return []spec{
		{
			name: "get-user-roster", label: "Get User Roster", title: "Getting a User's Roster", instr: "Fill out this form to get a user's roster.",
			fields: func(context.Context) []form.Field {
				return []form.Field{form.JIDMulti("accountjids", form.Label("The Jabber ID(s) for which to retrieve the roster"), form.Required)}
			},
			run: m.userRoster,
		},
		{
			name: "get-user-lastlogin", label: "Get User Last Login Time", title: "Getting a User's Last Login Time", instr: "Fill out this form to get a user's last login time.",
			fields: func(context.Context) []form.Field {
				return []form.Field{form.JIDMulti("accountjids", form.Label("The Jabber ID(s) for which to retrieve the last login time"), form.Required)}
			},
			run: m.lastLogin,
		},
		{
			name: "user-stats", label: "Get User Statistics", title: "Get User Statistics", instr: "Fill out this form to gather user statistics.",
			fields: func(context.Context) []form.Field {
				return []form.Field{form.JID("accountjid", form.Label("The Jabber ID for statistics"), form.Required)}
			},
			run: m.userStats,
		},
	}
}

// perAccount checks accountjids and answers one result form per account,
// made by form from the stored account.
func (m *Module) perAccount(ctx context.Context, r *adhoc.Request, result func(j jid.JID, a storage.Account) ([]xml.Token, error)) (*adhoc.Result, []string, error) {
	js, err := m.targets(ctx, r, "accountjids", false, true)
	if err != nil {
		res, err := targetResult(err)
		return res, r.Values["accountjids"], err
	}
	res := &adhoc.Result{}
	for _, j := range js {
		a, err := m.h.Store().Account(ctx, j.Localpart())
		if err != nil {
			return nil, strs(js), err
		}
		toks, err := result(j, a)
		if err != nil {
			return nil, strs(js), err
		}
		res.Payload = append(res.Payload, toks...)
	}
	return res, strs(js), nil
}

// userRoster embeds each account's roster as a jabber:iq:roster query in its
// result form, as XEP-0133 §4.8 shows.
func (m *Module) userRoster(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
	return m.perAccount(ctx, r, func(j jid.JID, _ storage.Account) ([]xml.Token, error) {
		items, _, err := m.h.Store().Roster(ctx, j.Localpart())
		if err != nil {
			return nil, err
		}
		return resultTokens(form.New(modules.FormType(NS), form.JIDMulti("accountjids", form.Value(j.String()))), rosterxml.Query("", items))
	})
}

// lastLogin gives each account's last login as an XEP-0082 DateTime, empty
// if it never logged in.
func (m *Module) lastLogin(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
	return m.perAccount(ctx, r, func(j jid.JID, a storage.Account) ([]xml.Token, error) {
		opts := []form.Option{form.Label("The last login time")}
		if !a.LastLogin.IsZero() {
			opts = append(opts, form.Value(a.LastLogin.UTC().Format(time.RFC3339)))
		}
		return resultTokens(form.New(modules.FormType(NS), form.JIDMulti("accountjids", form.Value(j.String())), form.Text("lastlogin", opts...)), nil)
	})
}

// userStats reports what the server measures of an account: the addresses
// and resources of its sessions, its roster size, the stanzas per second its
// sessions sent, its logins per minute since the server started, and the
// messages and bytes of its archive (XEP-0313; not a XEP-0133 field).
func (m *Module) userStats(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
	js, err := m.targets(ctx, r, "accountjid", false, true)
	if err != nil {
		res, err := targetResult(err)
		return res, r.Values["accountjid"], err
	}
	user := js[0].Localpart()
	items, _, err := m.h.Store().Roster(ctx, user)
	if err != nil {
		return nil, strs(js), err
	}
	visible := 0
	for _, it := range items {
		if !it.Hidden {
			visible++
		}
	}
	var ips, resources []string
	var stanzas uint64
	var seconds float64
	now := time.Now()
	for _, s := range m.h.Sessions() {
		if s.JID.Localpart() != user {
			continue
		}
		resources = append(resources, s.JID.Resourcepart())
		if host, _, err := splitHost(s.Remote); err == nil && !slices.Contains(ips, host) {
			ips = append(ips, host)
		}
		stanzas += s.Stanzas
		seconds += now.Sub(s.Since).Seconds()
	}
	rate := 0.0
	if seconds > 0 {
		rate = float64(stanzas) / seconds * float64(len(resources))
	}
	archived, archiveBytes, err := m.h.Store().ArchiveSize(ctx, user)
	if err != nil {
		return nil, strs(js), err
	}
	logins, since := m.h.Logins(user)
	perMinute := float64(logins) / max(now.Sub(since).Minutes(), 1.0/60)
	ipOpts := []form.Option{form.Label("The IP addresses of an account's online sessions")}
	for _, ip := range ips {
		ipOpts = append(ipOpts, form.ListItem(ip, ip), form.Value(ip))
	}
	resOpts := []form.Option{form.Label("The names of an account's online sessions")}
	for _, r := range resources {
		resOpts = append(resOpts, form.Value(r))
	}
	d := form.New(modules.FormType(NS),
		form.JID("accountjid", form.Value(js[0].String())),
		form.ListMulti("ipaddresses", ipOpts...),
		form.Text("rostersize", form.Label("Number of roster items for an account"), form.Value(strconv.Itoa(visible))),
		form.TextMulti("onlineresources", resOpts...),
		form.Text("stanzaspersecond", form.Label("The number of stanzas being sent per second by an account"), form.Value(fmt.Sprintf("%.3f", rate))),
		form.Text("loginsperminute", form.Label("The number of logins per minute for an account"), form.Value(fmt.Sprintf("%.3f", perMinute))),
		form.Text("archivedmessages", form.Label("Messages in the account's archive (XEP-0313)"), form.Value(strconv.Itoa(archived))),
		form.Text("archivebytes", form.Label("Bytes of the account's archive"), form.Value(strconv.FormatInt(archiveBytes, 10))),
	)
	return &adhoc.Result{Form: d}, strs(js), nil
}

// resultTokens renders a form as type='result' with extra content appended
// inside <x/>.
func resultTokens(d *form.Data, extra []xml.Token) ([]xml.Token, error) {
	var toks []xml.Token
	r := d.TokenReader()
	for {
		t, err := r.Token()
		if t != nil {
			toks = append(toks, xml.CopyToken(t))
		}
		if err != nil {
			break
		}
	}
	if len(toks) < 2 {
		return nil, fmt.Errorf("admin: empty form")
	}
	x := toks[0].(xml.StartElement)
	for i, a := range x.Attr {
		if a.Name.Local == "type" {
			x.Attr[i].Value = "result"
		}
	}
	toks[0] = x
	end := toks[len(toks)-1]
	out := append(toks[:len(toks)-1:len(toks)-1], extra...)
	return append(out, end), nil
}
