package admin

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/admin/nodes"
)

// NSOperator is the node namespace of adhocd's own operator commands
// (defined in package nodes, which clients import without linking the
// server).
const NSOperator = nodes.NSOperator

// OperatorNode returns the node of an operator command ("status"), as
// nodes.Operator does.
func OperatorNode(name string) string { return nodes.Operator(name) }

// operatorCommands: what an operator needs beyond XEP-0133: server status,
// the connected sessions, the server-to-server streams, reloading
// config.yaml, and ping.
func (m *Module) operatorCommands() []spec {
	return []spec{
		{name: "status", label: "Server Status", run: m.status},
		{name: "sessions", label: "Connected Sessions", run: m.sessions},
		{name: "s2s", label: "Server-to-Server Streams", run: m.s2s},
		{name: "reload", label: "Reload Configuration", run: m.reload},
		{name: "ping", label: "Ping", run: func(context.Context, *adhoc.Request) (*adhoc.Result, []string, error) {
			return done("pong at %s", time.Now().UTC().Format(time.RFC3339)), nil, nil
		}},
	}
}

func (m *Module) status(_ context.Context, _ *adhoc.Request) (*adhoc.Result, []string, error) {
	fields := []form.Field{modules.FormType(NSOperator)}
	for _, f := range m.h.StatusFigures() {
		fields = append(fields, form.Text(f.Var, form.Label(f.Label), form.Value(f.Value)))
	}
	return &adhoc.Result{Form: form.New(fields...)}, nil, nil
}

func (m *Module) sessions(_ context.Context, _ *adhoc.Request) (*adhoc.Result, []string, error) {
	t := &adhoc.Table{Title: "Connected sessions", FormType: NSOperator, Columns: []adhoc.Column{
		{Var: "jid", Label: "JID", Type: form.TypeJID},
		{Var: "resource", Label: "Resource"},
		{Var: "address", Label: "Client address"},
		{Var: "since", Label: "Connected since"},
		{Var: "idle", Label: "Idle (seconds)"},
		{Var: "available", Label: "Available", Type: form.TypeBoolean},
	}}
	now := time.Now()
	sessions := m.h.Sessions()
	slices.SortFunc(sessions, func(a, b modules.SessionInfo) int { return strings.Compare(a.JID.String(), b.JID.String()) })
	for _, s := range sessions {
		t.Rows = append(t.Rows, []string{
			s.JID.Bare().String(), s.JID.Resourcepart(), s.Remote, s.Since.UTC().Format(time.RFC3339),
			strconv.Itoa(int(now.Sub(s.LastActive).Seconds())), strconv.FormatBool(s.Available),
		})
	}
	return &adhoc.Result{Table: t, Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: plural(len(t.Rows), "session", "sessions")}}}, nil, nil
}

// s2s lists the server-to-server streams (RFC 6120 §2.5): outbound ones
// first, each direction by remote domain, with how the remote domain was
// authenticated (XEP-0220 dialback or SASL EXTERNAL), whether the stream is
// encrypted, since when it is up and what waits in its queue.
func (m *Module) s2s(_ context.Context, _ *adhoc.Request) (*adhoc.Result, []string, error) {
	t := &adhoc.Table{Title: "Server-to-server streams", FormType: NSOperator, Columns: []adhoc.Column{
		{Var: "remote", Label: "Remote domain"},
		{Var: "local", Label: "Local domain"},
		{Var: "direction", Label: "Direction"},
		{Var: "auth", Label: "Authentication"},
		{Var: "tls", Label: "TLS", Type: form.TypeBoolean},
		{Var: "since", Label: "Since"},
		{Var: "queued", Label: "Queued stanzas"},
	}}
	streams := m.h.S2SStreams()
	slices.SortStableFunc(streams, func(a, b modules.S2SInfo) int {
		if a.Inbound != b.Inbound {
			if a.Inbound {
				return 1
			}
			return -1
		}
		if c := strings.Compare(a.Remote, b.Remote); c != 0 {
			return c
		}
		return strings.Compare(a.Local, b.Local)
	})
	in := 0
	for _, s := range streams {
		direction, auth := "out", s.Auth
		if s.Inbound {
			direction = "in"
			in++
		}
		if auth == "" {
			auth = "negotiating"
		}
		t.Rows = append(t.Rows, []string{
			s.Remote, s.Local, direction, auth, strconv.FormatBool(s.TLS),
			s.Since.UTC().Format(time.RFC3339), strconv.Itoa(s.Queued),
		})
	}
	res := &adhoc.Result{Table: t, Notes: []adhoc.Note{{Type: adhoc.NoteInfo,
		Text: plural(len(streams), "stream", "streams") + ": " + strconv.Itoa(len(streams)-in) + " outbound, " + strconv.Itoa(in) + " inbound"}}}
	if m.h.Config().S2S.Listen == "" && len(streams) == 0 {
		res.Notes = append(res.Notes, adhoc.Note{Type: adhoc.NoteInfo, Text: "federation is off: s2s.listen is empty"})
	}
	return res, nil, nil
}

func (m *Module) reload(ctx context.Context, _ *adhoc.Request) (*adhoc.Result, []string, error) {
	restart, err := m.h.Reload(ctx)
	if err != nil {
		return failed("config.yaml was not reloaded: %v", err), nil, nil
	}
	res := done("reloaded config.yaml: admins, limits and admin settings are in force")
	if len(restart) > 0 {
		res.Notes = append(res.Notes, adhoc.Note{Type: adhoc.NoteWarn, Text: "changed, but applied only at the next restart: " + strings.Join(restart, ", ")})
	}
	return res, nil, nil
}

// onReload applies what the admin module reads from a new configuration.
func (m *Module) onReload(ctx context.Context, cfg config.Config) { m.configMOTD(ctx, cfg) }
