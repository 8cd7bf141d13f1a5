package muc

import (
	"context"
	"encoding/xml"
	"fmt"
	"strconv"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// Bounds of the texts of a configuration.
const (
	maxNameBytes     = 256
	maxDescBytes     = 4096
	maxPasswordBytes = 256
)

// field is one muc#roomconfig field: how it is shown and how a submitted
// value sets it.
type field struct {
	v, typ, label string
	options       func(m *Module) []string
	get           func(c *Config) string
	set           func(m *Module, c *Config, v string) error
	// show, when set, tells whether the form has the field.
	show func(m *Module) bool
}

func boolField(v, label string, p func(c *Config) *bool) field {
	return field{v: v, typ: "boolean", label: label,
		get: func(c *Config) string { return modules.FormBool(*p(c)) },
		set: func(_ *Module, c *Config, s string) error {
			b, err := modules.ParseFormBool(s)
			*p(c) = b
			return err
		}}
}

func textField(v, typ, label string, limit int, p func(c *Config) *string) field {
	return field{v: v, typ: typ, label: label,
		get: func(c *Config) string { return *p(c) },
		set: func(_ *Module, c *Config, s string) error {
			if len(s) > limit {
				return fmt.Errorf("longer than %d bytes", limit)
			}
			*p(c) = s
			return nil
		}}
}

func choiceField(v, label string, choices []string, p func(c *Config) *string) field {
	return field{v: v, typ: "list-single", label: label,
		options: func(*Module) []string { return choices },
		get:     func(c *Config) string { return *p(c) },
		set: func(_ *Module, c *Config, s string) error {
			for _, ch := range choices {
				if s == ch {
					*p(c) = s
					return nil
				}
			}
			return fmt.Errorf("%q is none of %q", s, choices)
		}}
}

// passwordProtected is the submitted muc#roomconfig_passwordprotectedroom,
// which decides with the secret whether the room has a password.
const passwordProtected = "muc#roomconfig_passwordprotectedroom"

// fields are the configuration's fields, in the form's order.
var fields = []field{
	textField("muc#roomconfig_roomname", "text-single", "Name", maxNameBytes, func(c *Config) *string { return &c.Name }),
	textField("muc#roomconfig_roomdesc", "text-single", "Description", maxDescBytes, func(c *Config) *string { return &c.Description }),
	boolField("muc#roomconfig_persistentroom", "Persistent (kept when the last occupant leaves)", func(c *Config) *bool { return &c.Persistent }),
	boolField("muc#roomconfig_publicroom", "Listed in the directory of rooms", func(c *Config) *bool { return &c.Public }),
	boolField("muc#roomconfig_membersonly", "Members only", func(c *Config) *bool { return &c.MembersOnly }),
	boolField("muc#roomconfig_moderatedroom", "Moderated (only participants have voice)", func(c *Config) *bool { return &c.Moderated }),
	{v: passwordProtected, typ: "boolean", label: "Password-protected",
		get: func(c *Config) string { return modules.FormBool(c.Password != "") },
		set: func(_ *Module, _ *Config, s string) error { _, err := modules.ParseFormBool(s); return err }},
	textField("muc#roomconfig_roomsecret", "text-private", "Password", maxPasswordBytes, func(c *Config) *string { return &c.Password }),
	{v: "muc#roomconfig_maxusers", typ: "list-single", label: "Maximum number of occupants",
		options: func(m *Module) []string {
			var out []string
			for _, n := range []int{10, 20, 30, 50, 100, 200, 500, 1000} {
				if n < m.opts.MaxOccupants {
					out = append(out, strconv.Itoa(n))
				}
			}
			return append(out, strconv.Itoa(m.opts.MaxOccupants))
		},
		get: func(c *Config) string { return strconv.Itoa(c.MaxUsers) },
		set: func(m *Module, c *Config, s string) error {
			if s == "none" || s == "0" || s == "" {
				c.MaxUsers = m.opts.MaxOccupants
				return nil
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > m.opts.MaxOccupants {
				return fmt.Errorf("%q is not a number from 1 to %d", s, m.opts.MaxOccupants)
			}
			c.MaxUsers = n
			return nil
		}},
	choiceField("muc#roomconfig_whois", "Who may see occupants' real JIDs", []string{WhoisModerators, WhoisAnyone}, func(c *Config) *string { return &c.Whois }),
	boolField("muc#roomconfig_changesubject", "Participants may change the subject", func(c *Config) *bool { return &c.ChangeSubject }),
	{v: "muc#maxhistoryfetch", typ: "text-single", label: "Messages kept and sent to who enters",
		get: func(c *Config) string { return strconv.Itoa(c.HistoryLength) },
		set: func(m *Module, c *Config, s string) error {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > m.opts.HistoryLength {
				return fmt.Errorf("%q is not a number from 0 to %d", s, m.opts.HistoryLength)
			}
			c.HistoryLength = n
			return nil
		}},
	choiceField("muc#roomconfig_allowpm", "Who may send private messages", []string{PMAnyone, PMParticipants, PMModerators, PMNone}, func(c *Config) *string { return &c.AllowPM }),
	withShow(boolField("muc#roomconfig_enablearchiving", "Archive the messages of the persistent room (XEP-0313)", func(c *Config) *bool { return &c.Archive }),
		(*Module).archives),
}

// withShow is f shown in the form only when show says so; submitted, it is
// taken all the same (and has no effect).
func withShow(f field, show func(*Module) bool) field {
	f.show = show
	return f
}

// fieldAliases are other names clients send for a field (Prosody's).
var fieldAliases = map[string]string{"muc#roomconfig_historylength": "muc#maxhistoryfetch"}

func fieldOf(v string) *field {
	if a, ok := fieldAliases[v]; ok {
		v = a
	}
	for i := range fields {
		if fields[i].v == v {
			return &fields[i]
		}
	}
	return nil
}

// configForm renders c as the muc#roomconfig form (XEP-0045 §10.2).
func (m *Module) configForm(r *room) wire.Node {
	x := wire.Elem(nsXData, "x", "type", "form").Add(
		wire.TextElem(nsXData, "title", "Configuration of "+r.jid.String()),
		wire.TextElem(nsXData, "instructions", "Submit this form to configure the room; submit it empty to keep the defaults."),
		formField("FORM_TYPE", "hidden", "", nil, nsRoomConfig),
	)
	for _, f := range fields {
		if f.show != nil && !f.show(m) {
			continue
		}
		var opts []string
		if f.options != nil {
			opts = f.options(m)
		}
		x = x.Add(formField(f.v, f.typ, f.label, opts, f.get(&r.Config)))
	}
	return x
}

// formField is a data form field with one value and its options.
func formField(v, typ, label string, options []string, value string) wire.Node {
	f := wire.Elem(nsXData, "field", "var", v, "type", typ, "label", label)
	f = f.Add(wire.TextElem(nsXData, "value", value))
	for _, o := range options {
		f = f.Add(wire.Elem(nsXData, "option", "label", o).Add(wire.TextElem(nsXData, "value", o)))
	}
	return f
}

// formValues reads a submitted form: its FORM_TYPE and the first value of
// each other field.
func formValues(x *wire.Element) (formType string, vals map[string]string) {
	vals = map[string]string{}
	for _, f := range x.Children(xml.Name{Space: nsXData, Local: "field"}) {
		v, _ := textOf(f, nsXData, "value")
		if f.Attr("var") == "FORM_TYPE" {
			formType = v
			continue
		}
		vals[f.Attr("var")] = v
	}
	return formType, vals
}

// applyForm returns c changed by a submitted form. Fields the service does
// not know are ignored; a value it cannot take is not-acceptable
// (XEP-0045 §10.1.3).
func (m *Module) applyForm(c Config, x *wire.Element) (Config, error) {
	formType, vals := formValues(x)
	if formType != "" && formType != nsRoomConfig {
		return c, modules.StanzaError(stanza.Modify, stanza.NotAcceptable, "the form is not a "+nsRoomConfig+" form")
	}
	for v, s := range vals {
		f := fieldOf(v)
		if f == nil {
			continue
		}
		if err := f.set(m, &c, s); err != nil {
			return c, modules.StanzaError(stanza.Modify, stanza.NotAcceptable, v+": "+err.Error())
		}
	}
	if s, ok := vals[passwordProtected]; ok {
		protected, _ := modules.ParseFormBool(s)
		switch {
		case !protected:
			c.Password = ""
		case c.Password == "":
			return c, modules.StanzaError(stanza.Modify, stanza.NotAcceptable, "a password-protected room needs muc#roomconfig_roomsecret")
		}
	}
	return c, nil
}

// ownerIQ is a muc#owner request (XEP-0045 §10): the configuration form,
// its submission or cancellation, or the room's destruction. Only owners
// may.
func (m *Module) ownerIQ(ctx context.Context, r *room, from jid.JID, typ string, q *wire.Element) ([]wire.Node, error) {
	if r.affiliation(from.Bare().String()) != Owner {
		return nil, modules.StanzaError(stanza.Auth, stanza.Forbidden, "only owners may configure the room")
	}
	if typ == "get" {
		return []wire.Node{wire.Elem(nsOwner, "query").Add(m.configForm(r))}, nil
	}
	if d := q.Sub(xml.Name{Space: nsOwner, Local: "destroy"}); d != nil {
		return nil, m.destroyRoom(ctx, r, d)
	}
	x := q.Sub(xml.Name{Space: nsXData, Local: "x"})
	if x == nil {
		return nil, modules.StanzaError(stanza.Modify, stanza.BadRequest, "expected a data form or <destroy/>")
	}
	switch x.Attr("type") {
	case "cancel":
		if r.Locked {
			// The initial configuration cancelled: the new room goes
			// (XEP-0045 §10.1.3).
			return nil, m.destroyRoom(ctx, r, nil)
		}
		return nil, nil
	case "submit":
	default:
		return nil, modules.StanzaError(stanza.Modify, stanza.BadRequest, "a configuration is submitted or cancelled")
	}
	c, err := m.applyForm(r.Config, x)
	if err != nil {
		return nil, err
	}
	// Stored first (or removed from the store, made temporary): a
	// configuration the store refuses is not taken.
	next := r.State
	next.Config, next.Locked = c, false
	if err := m.save(ctx, r, next); err != nil {
		return nil, err
	}
	m.loadHistory(ctx, r)
	old := r.Config
	r.Config = c
	wasLocked := r.Locked
	r.Locked = false
	if n := r.maxHistory(m.opts.HistoryLength); len(r.History) > n {
		r.History = append(r.History[:0:0], r.History[len(r.History)-n:]...)
	}
	if !wasLocked && old != c {
		codes := []string{codeConfigChange}
		switch {
		case old.Whois != c.Whois && c.Whois == WhoisAnyone:
			codes = append(codes, codeNowNonAnon)
		case old.Whois != c.Whois:
			codes = append(codes, codeNowSemiAnon)
		}
		msg := stanzaOf("message", r.jid.String(), "", "groupchat", "").Add(wire.Elem(nsUser, "x").Add(statusNodes(codes...)...))
		for _, v := range r.list() {
			for _, s := range v.sessions {
				m.sendTo(ctx, msg, s.jid)
			}
		}
	}
	if c.MembersOnly && !old.MembersOnly {
		// Those who are not members now leave (XEP-0045 §9.3, 322).
		for _, o := range r.list() {
			if r.affiliation(o.bare.String()).rank() < Member.rank() {
				m.remove(ctx, r, o, []string{codeMembersOnly}, "", "")
			}
		}
	}
	m.destroyIfIdle(r)
	return nil, nil
}

// destroyRoom removes every occupant, each told with an unavailable
// presence carrying the <destroy/> of the request (its reason and
// alternate venue, XEP-0045 §10.9), and ends the room. A stored room is
// removed from the store (its archive with it) first; when the store
// refuses, nothing changes and the error is the requester's answer.
func (m *Module) destroyRoom(ctx context.Context, r *room, req *wire.Element) error {
	if err := m.forget(ctx, r); err != nil {
		return err
	}
	var d *wire.Node
	if req != nil {
		n := wire.Elem(nsUser, "destroy", "jid", req.Attr("jid"))
		if reason, _ := textOf(req, nsOwner, "reason"); reason != "" {
			n = n.Add(wire.TextElem(nsUser, "reason", reason))
		}
		if pw, ok := textOf(req, nsOwner, "password"); ok && pw != "" {
			n = n.Add(wire.TextElem(nsUser, "password", pw))
		}
		d = &n
	}
	clear(r.Affiliations)
	for _, o := range r.list() {
		o.role = RoleNone
		m.toSelf(ctx, r, o, presenceOpts{typ: "unavailable", destroy: d, inner: []xml.Token{}})
		r.removeOccupant(o.nick)
	}
	m.destroy(r)
	return nil
}
