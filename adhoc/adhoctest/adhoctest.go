// Package adhoctest holds what the tests of XEP-0050 commands share: the demo
// commands under the names the tests use, an admin-only command and the
// one-stage benchmark.
package adhoctest

import (
	"context"
	"encoding/xml"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/demo"
)

// WizardNode is the node of the demo wizard.
const WizardNode = demo.WizardNode

// TimeNode is the node of the demo greeting.
const TimeNode = demo.GreetingNode

// Wizard is demo.Wizard, the three-stage command the tests drive.
func Wizard() adhoc.Command { return demo.Wizard() }

// Greeting is demo.Greeting, the one-stage command the tests drive.
func Greeting() adhoc.Command { return demo.Greeting() }

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
