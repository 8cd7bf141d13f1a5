// Package adhoctest holds demonstration commands for tests, examples and
// interop runs: a three-stage wizard and a one-stage command.
package adhoctest

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
)

// WizardNode is the node of the wizard.
const WizardNode = "urn:adhocd:test:wizard"

// TimeNode is the node of the one-stage command.
const TimeNode = "urn:adhocd:test:greeting"

// Wizard is a three-stage command open to anyone: stage 1 asks a name
// (required) and a colour (list-single), stage 2 a contact JID (required)
// and a boolean, stage 3 a free comment and shows a summary of the earlier
// answers. It completes with a result form echoing what was submitted; a
// name of "fail" completes with an error note instead.
func Wizard() adhoc.Command {
	return adhoc.Command{
		Node:      WizardNode,
		Name:      "Test wizard",
		Names:     map[string]string{"fr": "Assistant de test"},
		Allow:     adhoc.Anyone(),
		Languages: []string{"en", "fr"},
		Stages: []adhoc.Stage{
			{Form: func(_ context.Context, r *adhoc.Request) (*form.Data, error) {
				title := "Who are you?"
				if r.Lang == "fr" {
					title = "Qui êtes-vous ?"
				}
				return form.New(
					form.Title(title),
					form.Text("name", form.Label("Name"), form.Required),
					form.List("color", form.Label("Colour"), form.Required,
						form.ListItem("Red", "red"), form.ListItem("Green", "green"), form.ListItem("Blue", "blue")),
				), nil
			}},
			{Form: func(_ context.Context, r *adhoc.Request) (*form.Data, error) {
				return form.New(
					form.Title("Hello "+r.Values.Get("name")),
					form.JID("contact", form.Label("Contact"), form.Required),
					form.Boolean("notify", form.Label("Notify them")),
				), nil
			}},
			{Form: func(_ context.Context, r *adhoc.Request) (*form.Data, error) {
				return form.New(
					form.Title("Confirm"),
					form.Instructions(fmt.Sprintf("%s likes %s and knows %s", r.Values.Get("name"), r.Values.Get("color"), r.Values.Get("contact"))),
					form.TextMulti("comment", form.Label("Comment")),
				), nil
			}},
		},
		Complete: func(_ context.Context, r *adhoc.Request) (*adhoc.Result, error) {
			if r.Values.Get("name") == "fail" {
				return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteError, Text: "the name fail is not accepted: choose another"}}}, nil
			}
			return &adhoc.Result{
				Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: "done"}},
				Form: form.New(
					form.Text("name", form.Value(r.Values.Get("name"))),
					form.Text("color", form.Value(r.Values.Get("color"))),
					form.Text("contact", form.Value(r.Values.Get("contact"))),
					form.Text("notify", form.Value(r.Values.Get("notify"))),
					form.Text("comment", form.Value(strings.Join(r.Values["comment"], "\n"))),
				),
			}, nil
		},
	}
}

// Greeting is a one-stage command open to anyone: it completes at once
// with a note greeting the requester.
func Greeting() adhoc.Command {
	return adhoc.Command{
		Node:  TimeNode,
		Name:  "Greeting",
		Allow: adhoc.Anyone(),
		Complete: func(_ context.Context, r *adhoc.Request) (*adhoc.Result, error) {
			return &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: "hello " + r.Requester.Bare().String()}}}, nil
		},
	}
}

// AdminOnlyNode is the node of AdminOnly.
const AdminOnlyNode = "urn:adhocd:test:admin-only"

// AdminOnly is a one-stage command only requesters for which isAdmin holds
// may see and run.
func AdminOnly(isAdmin func(jid.JID) bool) adhoc.Command {
	return adhoc.Command{
		Node:  AdminOnlyNode,
		Name:  "Admins only",
		Allow: adhoc.Admins(isAdmin),
		Complete: func(context.Context, *adhoc.Request) (*adhoc.Result, error) {
			return &adhoc.Result{Notes: []adhoc.Note{{Text: "secret"}}}, nil
		},
	}
}

// BenchGreeting registers Greeting at responder and runs it through p in a
// b.Loop, rendering each response, with allocations reported: the one-stage
// hot path that the benchmarks of several packages compare.
func BenchGreeting(b *testing.B, p *adhoc.Provider, requester, responder jid.JID) {
	b.Helper()
	if err := p.AddCommand(responder, Greeting()); err != nil {
		b.Fatal(err)
	}
	start := xml.StartElement{Name: xml.Name{Space: adhoc.NS, Local: "command"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: TimeNode}}}
	iq := stanza.IQ{ID: "b", Type: stanza.SetIQ, From: requester, To: responder}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := p.Handle(ctx, iq, start, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := xmlstream.Copy(xmlstream.Discard(), r); err != nil {
			b.Fatal(err)
		}
	}
}
