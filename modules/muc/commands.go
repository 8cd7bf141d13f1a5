package muc

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// NSCommands is the node namespace of the service's administration
// commands, also the FORM_TYPE of their forms.
const NSCommands = "urn:adhocd:muc"

// CommandNode returns the node of one of the service's administration
// commands ("list-rooms", "destroy-room", "set-affiliation").
func CommandNode(name string) string { return NSCommands + "#" + name }

// adminHost is what the commands need of the Host beyond modules.Host, found
// by type assertion: whether a JID administers the server (the server's
// admins, as modules/admin's commands ask it).
type adminHost interface {
	IsAdmin(j jid.JID) bool
}

// addCommands registers the administration commands on the service's JID,
// in the server's XEP-0050 provider, for the server's administrators alone
// (asked again at every stage). A host that cannot tell administrators
// gets the commands for no one.
func (m *Module) addCommands(h modules.Host) error {
	isAdmin := func(jid.JID) bool { return false }
	if ah, ok := h.(adminHost); ok {
		isAdmin = ah.IsAdmin
	} else {
		m.log.Warn("muc: the host cannot tell administrators; the service's commands are refused to everyone")
	}
	for _, c := range []adhoc.Command{m.listRoomsCommand(), m.destroyRoomCommand(), m.setAffiliationCommand()} {
		c.Allow = adhoc.Admins(isAdmin)
		if err := h.Commands().AddCommand(m.domain, c); err != nil {
			return fmt.Errorf("muc: %w", err)
		}
	}
	return nil
}

// commandsIQ runs a <command/> request to the service's JID through the
// server's provider, as the server JID's commands are run, and returns the
// <command/> answer.
func (m *Module) commandsIQ(ctx context.Context, from jid.JID, el, q *wire.Element) ([]wire.Node, error) {
	if el.Attr("type") != string(stanza.SetIQ) {
		return nil, modules.StanzaError(stanza.Modify, stanza.BadRequest, "commands are run with IQ set")
	}
	iq := stanza.IQ{XMLName: el.Start.Name, ID: el.Attr("id"), Type: stanza.SetIQ, From: from, To: m.domain, Lang: langOf(el.Start)}
	resp, err := m.h.Commands().Handle(ctx, iq, q.Start, q.Inner)
	if err != nil {
		return nil, err
	}
	n, err := readNode(resp)
	if err != nil {
		return nil, fmt.Errorf("muc: command answer: %w", err)
	}
	return []wire.Node{n}, nil
}

// stageForm is a command's one stage: a form of fields after its title,
// instructions and FORM_TYPE, as the server's administration commands
// have.
func stageForm(title, instructions string, fields ...form.Field) []adhoc.Stage {
	return modules.FormStage(title, instructions, NSCommands, func(context.Context) []form.Field { return fields })
}

// audited wraps a command's work with the audit line modules/admin writes
// for every administration action (modules.AuditAdmin), and turns a failure
// the administrator can fix (a problem) into an error note.
func (m *Module) audited(name string, run func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error)) func(context.Context, *adhoc.Request) (*adhoc.Result, error) {
	return func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, error) {
		res, targets, err := run(ctx, r)
		var p problem
		if errors.As(err, &p) {
			res, err = &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteError, Text: p.Error()}}}, nil
		}
		modules.AuditAdmin(m.log, r, name, targets, res, err)
		return res, err
	}
}

// problem is what the administrator has to correct; nothing was changed.
type problem string

func (p problem) Error() string { return string(p) }

// listRoomsCommand lists every room of the service, hidden and locked ones
// too: JID, name, occupants, persistent, public.
func (m *Module) listRoomsCommand() adhoc.Command {
	return adhoc.Command{
		Node: CommandNode("list-rooms"),
		Name: "List Rooms",
		Complete: m.audited("list-rooms", func(context.Context, *adhoc.Request) (*adhoc.Result, []string, error) {
			t := &adhoc.Table{Title: "Rooms of " + m.domain.String(), FormType: NSCommands, Columns: []adhoc.Column{
				{Var: "jid", Label: "Room", Type: form.TypeJID},
				{Var: "name", Label: "Name"},
				{Var: "occupants", Label: "Occupants"},
				{Var: "persistent", Label: "Persistent", Type: form.TypeBoolean},
				{Var: "public", Label: "Public", Type: form.TypeBoolean},
			}}
			for _, r := range m.allRooms() {
				r.mu.Lock()
				if !r.gone {
					t.Rows = append(t.Rows, []string{r.jid.String(), r.Config.Name, strconv.Itoa(len(r.occupants)),
						modules.FormBool(r.Config.Persistent), modules.FormBool(r.Config.Public)})
				}
				r.mu.Unlock()
			}
			slices.SortFunc(t.Rows, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
			note := fmt.Sprintf("%d rooms", len(t.Rows))
			if len(t.Rows) == 1 {
				note = "1 room"
			}
			return &adhoc.Result{Table: t, Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: note}}}, nil, nil
		}),
	}
}

// destroyRoomCommand destroys a room as its owner would (XEP-0045 §10.9):
// every occupant gets an unavailable presence with the <destroy/>, its
// reason and alternate venue.
func (m *Module) destroyRoomCommand() adhoc.Command {
	return adhoc.Command{
		Node: CommandNode("destroy-room"),
		Name: "Destroy a Room",
		Stages: stageForm("Destroying a room", "The occupants are told the reason and where the discussion goes on.",
			form.JID("room", form.Label("The room"), form.Required),
			form.Text("reason", form.Label("Reason")),
			form.JID("venue", form.Label("Alternate venue (a room's JID)"))),
		Complete: m.audited("destroy-room", func(ctx context.Context, req *adhoc.Request) (*adhoc.Result, []string, error) {
			r, err := m.roomOf(req.Values.Get("room"))
			if err != nil {
				return nil, []string{req.Values.Get("room")}, err
			}
			defer r.mu.Unlock()
			d := wire.Elem(nsOwner, "destroy", "jid", req.Values.Get("venue"))
			if reason := req.Values.Get("reason"); reason != "" {
				d = d.Add(wire.TextElem(nsOwner, "reason", reason))
			}
			told := len(r.occupants)
			m.destroyRoom(ctx, r, elementOf(d))
			return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteInfo,
				Text: fmt.Sprintf("%s was destroyed; %d occupants were told", r.jid, told)}}}, []string{r.jid.String()}, nil
		}),
	}
}

// setAffiliationCommand changes a user's affiliation in a room as a
// muc#admin request of the room's owner would (XEP-0045 §9, §10): the
// same rules (the last owner stays, the bound on affiliations) and the
// same presence to the user's occupants (a ban removes them with 301).
func (m *Module) setAffiliationCommand() adhoc.Command {
	affs := []form.Option{form.Label("Affiliation"), form.Required}
	for _, a := range []Affiliation{Owner, Admin, Member, None, Outcast} {
		affs = append(affs, form.ListItem(string(a), string(a)))
	}
	return adhoc.Command{
		Node: CommandNode("set-affiliation"),
		Name: "Set an Affiliation in a Room",
		Stages: stageForm("Setting an affiliation", "The server's administrator acts as the room's owner.",
			form.JID("room", form.Label("The room"), form.Required),
			form.JID("jid", form.Label("The user's JID"), form.Required),
			form.List("affiliation", affs...),
			form.Text("reason", form.Label("Reason"))),
		Complete: m.audited("set-affiliation", func(ctx context.Context, req *adhoc.Request) (*adhoc.Result, []string, error) {
			user, aff := req.Values.Get("jid"), req.Values.Get("affiliation")
			targets := []string{req.Values.Get("room"), user}
			r, err := m.roomOf(req.Values.Get("room"))
			if err != nil {
				return nil, targets, err
			}
			defer r.mu.Unlock()
			it := wire.Elem(nsAdmin, "item", "affiliation", aff, "jid", user)
			if reason := req.Values.Get("reason"); reason != "" {
				it = it.Add(wire.TextElem(nsAdmin, "reason", reason))
			}
			// The service's own JID acts with the owner's rights (adminSet).
			var se stanza.Error
			if err := m.adminSet(ctx, r, m.domain, []*wire.Element{elementOf(it)}); errors.As(err, &se) {
				why := se.Text["en"]
				if why == "" {
					why = string(se.Condition)
				}
				return nil, targets, problem("nothing was changed: " + why)
			} else if err != nil {
				return nil, targets, err
			}
			j, _ := parseBare(user)
			return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteInfo,
				Text: fmt.Sprintf("%s is now %s of %s", j, aff, r.jid)}}}, targets, nil
		}),
	}
}

// roomOf returns the room of the service that v names, locked, or the
// problem with v.
func (m *Module) roomOf(v string) (*room, error) {
	j, err := jid.Parse(v)
	switch {
	case err != nil:
		return nil, problem(fmt.Sprintf("%q is not a JID", v))
	case j.Domainpart() != m.domain.Domainpart() || j.Localpart() == "" || j.Resourcepart() != "":
		return nil, problem(fmt.Sprintf("%s is not a room's JID: give room@%s", j, m.domain))
	}
	r := m.lookup(j.Localpart())
	if r == nil {
		return nil, problem("there is no room " + j.String())
	}
	return r, nil
}

// elementOf is n as the element a client would have sent.
func elementOf(n wire.Node) *wire.Element {
	toks := n.Tokens(nil)
	return &wire.Element{Start: toks[0].(xml.StartElement), Inner: toks[1 : len(toks)-1]}
}

// readNode is the one element r reads as a node that writes it again.
func readNode(r xml.TokenReader) (wire.Node, error) {
	buf := &wire.TokenBuffer{}
	for {
		t, err := r.Token()
		if t != nil {
			_ = buf.EncodeToken(t)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return wire.Node{}, err
		}
	}
	if len(buf.Elements()) != 1 {
		return wire.Node{}, fmt.Errorf("want one element, got %d", len(buf.Elements()))
	}
	return nodeOf(buf.Toks), nil
}

// langOf is a stanza's xml:lang.
func langOf(st xml.StartElement) string {
	for _, a := range st.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == wire.NSXML || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// xmlLang is the xml:lang attribute of value v.
func xmlLang(v string) xml.Attr {
	return xml.Attr{Name: xml.Name{Space: wire.NSXML, Local: "lang"}, Value: v}
}
