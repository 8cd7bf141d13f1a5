package adhoc

import (
	"context"
	"encoding/xml"
	"slices"
	"strings"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// NS is the XEP-0050 namespace.
const NS = "http://jabber.org/protocol/commands"

// Action is what a requester asks of a command session.
type Action string

// The actions of XEP-0050.
const (
	Execute  Action = "execute"
	Next     Action = "next"
	Prev     Action = "prev"
	Complete Action = "complete"
	Cancel   Action = "cancel"
)

// Status is the state of a command session in a response.
type Status string

// The statuses of XEP-0050.
const (
	Executing Status = "executing"
	Completed Status = "completed"
	Canceled  Status = "canceled"
)

// NoteType is the severity of a note.
type NoteType string

// The note types of XEP-0050.
const (
	NoteInfo  NoteType = "info"
	NoteWarn  NoteType = "warn"
	NoteError NoteType = "error"
)

// Note is a human-readable note in a response.
type Note struct {
	Type NoteType
	Text string
}

// Policy decides who may see and run a command. The zero Policy denies
// everyone: access is deny-by-default.
type Policy func(ctx context.Context, requester jid.JID) bool

// Anyone lets every requester run the command: every local one, and those
// of other domains only when the command also sets Command.Remote. It never
// opens a command to the whole network by itself.
func Anyone() Policy { return func(context.Context, jid.JID) bool { return true } }

// LocalUsers lets accounts of domain run the command.
func LocalUsers(domain jid.JID) Policy {
	return func(_ context.Context, r jid.JID) bool {
		return r.Localpart() != "" && r.Domain().Equal(domain.Domain())
	}
}

// Admins lets requesters for which isAdmin is true run the command; isAdmin
// is asked at every stage, so an admin removed mid-session is refused.
func Admins(isAdmin func(jid.JID) bool) Policy {
	return func(_ context.Context, r jid.JID) bool { return isAdmin(r) }
}

// Command is one ad-hoc command.
type Command struct {
	// Node identifies the command at its responder.
	Node string
	// Name is the human-readable name; Names holds translations by language
	// tag, used when the request's xml:lang matches.
	Name  string
	Names map[string]string
	// Allow decides who may see and run the command; nil denies everyone.
	Allow Policy
	// Remote opens the command to requesters of other domains (other
	// servers' users, over federation). Without it, a requester that the
	// provider does not count as local (WithLocal) is refused with
	// forbidden, and the command is left out of its disco#items and its
	// disco#info answers forbidden, whatever Allow says; with it, Allow
	// still decides. So Anyone() never opens a command to the network by
	// itself: set Remote on purpose, with a policy that means it.
	Remote bool
	// Stages are the forms shown before completion, in order. A command
	// without stages completes as soon as it is executed.
	Stages []Stage
	// Complete finishes the command with everything submitted. Its Result
	// carries notes (an error note when the command failed at something the
	// requester can fix) and an optional result form or payload. An error
	// that is a stanza.Error is sent as it is; any other is an
	// internal-server-error.
	Complete func(ctx context.Context, r *Request) (*Result, error)
	// Languages are the xml:lang tags the command can serve. Empty means any.
	// A request in another language gets bad-locale unless Fallback is set,
	// in which case it is served in Fallback. A request without xml:lang is
	// served in Fallback, else the first of Languages, else "en", and the
	// reply says so.
	Languages []string
	Fallback  string
}

// Stage is one form of a multi-stage command.
type Stage struct {
	// Form builds the stage's form. r.Values holds everything submitted so
	// far, so a stage can depend on earlier answers. Values this stage was
	// given before (the requester went back with prev) are filled in by the
	// engine.
	Form func(ctx context.Context, r *Request) (*form.Data, error)
	// Check validates this stage's submission beyond what the form itself
	// says (required fields, options, JIDs). A *PayloadError is answered with
	// bad-payload; a stanza.Error as it is.
	Check func(ctx context.Context, r *Request) error
	// AllowComplete offers complete from this stage; the last stage always
	// offers it.
	AllowComplete bool
}

// Request is what a command's functions are given.
type Request struct {
	// Requester is the full JID that runs the command; Responder the JID
	// that serves it.
	Requester jid.JID
	Responder jid.JID
	Node      string
	SessionID string
	// Lang is the language the session is served in.
	Lang   string
	Action Action
	// Stage is the index of the stage the request is about.
	Stage int
	// Values are the submitted field values of every stage so far, by
	// field var; a later stage's value replaces an earlier one's.
	Values Values
	// IQ is the request's IQ (its From is Requester).
	IQ stanza.IQ
}

// Values are submitted form values by field var.
type Values map[string][]string

// Get returns the first value of var, or "".
func (v Values) Get(name string) string {
	if vs := v[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Result is what a command completes with.
type Result struct {
	Notes []Note
	// Form is shown to the requester as a result form (type='result').
	Form *form.Data
	// Table is a multi-item result (<reported/> and <item/>).
	Table *Table
	// Payload is any other XML to include (a roster query, say).
	Payload []xml.Token
}

// Table is a multi-item result form: columns and rows.
type Table struct {
	Title string
	// FormType, if set, is sent as the hidden FORM_TYPE field.
	FormType string
	Columns  []Column
	Rows     [][]string
}

// Column is one column of a Table.
type Column struct {
	Var, Label string
	Type       form.FieldType
}

// name returns the command's name in lang, or its default name.
func (c *Command) name(lang string) string {
	if n, ok := c.Names[lang]; ok {
		return n
	}
	if base, _, ok := strings.Cut(lang, "-"); ok {
		if n, ok := c.Names[base]; ok {
			return n
		}
	}
	return c.Name
}

// language resolves the language a request is served in; ok is false when
// the command cannot serve it (bad-locale).
func (c *Command) language(lang string) (string, bool) {
	if lang == "" {
		// XEP-0050 §3.7: the responder says which language it serves.
		switch {
		case c.Fallback != "":
			return c.Fallback, true
		case len(c.Languages) > 0:
			return c.Languages[0], true
		}
		return "en", true
	}
	if len(c.Languages) == 0 {
		return lang, true
	}
	if slices.Contains(c.Languages, lang) {
		return lang, true
	}
	if base, _, ok := strings.Cut(lang, "-"); ok && slices.Contains(c.Languages, base) {
		return base, true
	}
	if c.Fallback != "" {
		return c.Fallback, true
	}
	return "", false
}

// allowed reports whether requester may see and run the command: a
// requester that is not local (isLocal false) needs Remote, then Allow
// decides. A nil isLocal counts every requester as local.
func (c *Command) allowed(ctx context.Context, isLocal func(jid.JID) bool, requester jid.JID) bool {
	if !c.Remote && isLocal != nil && !isLocal(requester) {
		return false
	}
	return c.Allow != nil && c.Allow(ctx, requester)
}
