// Package admin provides the XEP-0133 Service Administration commands on the
// server JID, and adhocd's own operator commands (urn:adhocd:admin#status,
// sessions, s2s, reload, ping), built on package adhoc's XEP-0050 provider. It
// needs more of the server than modules.Host and declares it as its own Host,
// found by type assertion; account operations go through account.Service.
//
// Every command is deny-by-default: only administrators (config.yaml's
// admins, and those kept in the store by edit-admin) see them in disco#items
// or may run them, asked again at every stage. Every JID is parsed and
// checked before anything is done, so a list with one bad JID changes
// nothing and the error note names it. A failure that is the administrator's
// to fix completes with an error note saying what to fix. Each action writes
// one audit log line (who, which command, which targets, the outcome); no
// password or other field value is ever logged.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/admin/nodes"
	"github.com/adhocd/adhocd/storage"
)

// NS is the XEP-0133 namespace, also the FORM_TYPE of its forms (defined in
// package nodes, which clients import without linking the server).
const NS = nodes.NS

// Node returns the command node of an XEP-0133 command name ("add-user"),
// as nodes.Admin does.
func Node(name string) string { return nodes.Admin(name) }

// Host is what the administration commands use of the server beyond
// modules.Host: the server's own state and controls. Start finds it on the
// host it is given.
type Host interface {
	modules.Host
	// IsAdmin reports whether j's bare JID may administer the server.
	IsAdmin(j jid.JID) bool
	// EndSessions closes an account's sessions (every one, or the one bound
	// to resource) with a stream error whose text is reason, and returns
	// how many it closed.
	EndSessions(user, resource, reason string) int
	// Status reports the server's counters.
	Status() modules.Status
	// StatusFigures is the server's status report, as the status command
	// and `adhocd status` show it.
	StatusFigures() []modules.Figure
	// S2SStreams lists the server-to-server streams, outbound first, by
	// remote domain; none with federation off.
	S2SStreams() []modules.S2SInfo
	// Logins returns how many times user logged in since the server started,
	// and when it started.
	Logins(user string) (count int, since time.Time)
	// Admins returns the administrators from the configuration (always
	// admins) and those kept in the store.
	Admins() (configured, stored []string)
	// SetAdmins replaces the administrators kept in the store.
	SetAdmins(ctx context.Context, stored []string) error
	// AccessLists returns the blacklist and whitelist (JIDs of any form).
	AccessLists() (black, white []string)
	// SetAccessLists stores and applies new lists; sessions they no longer
	// allow are ended.
	SetAccessLists(ctx context.Context, black, white []string) error
	// Reload reads config.yaml again and applies admins, limits and the
	// admin section; it returns the changed keys that need a restart.
	Reload(ctx context.Context) (needRestart []string, err error)
	// OnReload registers fn to run with the new configuration after a
	// reload. Register during Start only.
	OnReload(fn func(ctx context.Context, cfg config.Config))
	// Stop ends the server (restart false) or restarts it: streams are
	// closed with system-shutdown and the store is closed cleanly.
	Stop(restart bool)
}

// Module registers the administration commands.
type Module struct {
	h   Host
	log *slog.Logger
}

var (
	_ modules.Module     = (*Module)(nil)
	_ modules.OnlineHook = (*Module)(nil)
)

// New returns the admin module.
func New() modules.Module { return &Module{} }

// Name implements modules.Module.
func (*Module) Name() string { return "admin" }

// Stop implements modules.Module.
func (*Module) Stop(context.Context) error { return nil }

// Start implements modules.Module.
func (m *Module) Start(ctx context.Context, mh modules.Host) error {
	h, ok := mh.(Host)
	if !ok {
		return fmt.Errorf("admin: the host (%T) has no administration surface", mh)
	}
	m.h, m.log = h, h.Logger()
	var specs []spec
	for _, group := range [][]spec{m.userCommands(), m.infoCommands(), m.countCommands(), m.messageCommands(), m.motdCommands(), m.accessCommands(), m.adminCommands(), m.lifecycleCommands()} {
		specs = append(specs, group...)
	}
	h.OnReload(m.onReload)
	for _, sp := range specs {
		if err := h.Commands().AddCommand(h.Domain(), m.command(sp, Node(sp.name))); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	for _, sp := range m.operatorCommands() {
		if err := h.Commands().AddCommand(h.Domain(), m.command(sp, OperatorNode(sp.name))); err != nil {
			return fmt.Errorf("admin: %w", err)
		}
	}
	m.configMOTD(ctx, h.Config())
	return nil
}

// spec describes one command.
type spec struct {
	name  string // the XEP-0133 name: add-user, …
	label string // the name shown in command lists
	title string // the form's title and instructions
	instr string
	// fields builds the form's fields (after FORM_TYPE); nil for commands
	// that complete at once.
	fields func(ctx context.Context) []form.Field
	// run does the work and returns the targets for the audit line.
	run func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error)
}

func (m *Module) command(sp spec, node string) adhoc.Command {
	c := adhoc.Command{
		Node:  node,
		Name:  sp.label,
		Allow: adhoc.Admins(m.h.IsAdmin),
		Complete: func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, error) {
			res, targets, err := sp.run(ctx, r)
			modules.AuditAdmin(m.log, r, sp.name, targets, res, err)
			return res, err
		},
	}
	if sp.fields != nil {
		c.Stages = modules.FormStage(sp.title, sp.instr, NS, sp.fields)
	}
	return c
}

// failed completes a command with an error note saying what to fix.
func failed(format string, args ...any) *adhoc.Result {
	return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteError, Text: fmt.Sprintf(format, args...)}}}
}

func done(format string, args ...any) *adhoc.Result {
	return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: fmt.Sprintf(format, args...)}}}
}

// errTarget is a target JID the administrator has to correct.
type errTarget struct{ msg string }

func (e *errTarget) Error() string { return e.msg }

// targets checks every JID of field before anything is done: each must be a
// local JID, bare unless full is allowed, and, with mustExist, an existing
// account.
func (m *Module) targets(ctx context.Context, r *adhoc.Request, field string, full, mustExist bool) ([]jid.JID, error) {
	var out []jid.JID
	for _, v := range r.Values[field] {
		j, err := jid.Parse(v)
		switch {
		case err != nil:
			return nil, &errTarget{fmt.Sprintf("%q is not a valid JID", v)}
		case j.Domainpart() != m.h.Domain().Domainpart():
			return nil, &errTarget{fmt.Sprintf("%s is not on this server: give a JID of %s", j, m.h.Domain())}
		case j.Localpart() == "":
			return nil, &errTarget{fmt.Sprintf("%s is a server, not an account: give user@%s", j, m.h.Domain())}
		case j.Resourcepart() != "" && !full:
			return nil, &errTarget{fmt.Sprintf("%s has a resource: give the bare JID %s", j, j.Bare())}
		}
		if mustExist {
			if _, err := m.h.Store().Account(ctx, j.Localpart()); errors.Is(err, storage.ErrNotFound) {
				return nil, &errTarget{fmt.Sprintf("there is no account %s", j.Bare())}
			} else if err != nil {
				return nil, err
			}
		}
		out = append(out, j)
	}
	if len(out) == 0 {
		return nil, &errTarget{"give at least one JID"}
	}
	return out, nil
}

// targetResult turns a targets error into the command's outcome.
func targetResult(err error) (*adhoc.Result, error) {
	var et *errTarget
	if errors.As(err, &et) {
		return failed("nothing was changed: %s", et.msg), nil
	}
	return nil, err
}

func strs(js []jid.JID) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.String()
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
