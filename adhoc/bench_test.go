package adhoc_test

import (
	"context"
	"encoding/xml"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
)

// BenchmarkOneStageInProcess measures one execution of a one-stage command
// through the provider, response rendered to tokens, no network.
func BenchmarkOneStageInProcess(b *testing.B) {
	adhoctest.BenchGreeting(b, adhoc.NewProvider(), alice, server)
}

// BenchmarkWizardInProcess measures a whole three-stage flow (execute, next,
// next, complete) in process.
func BenchmarkWizardInProcess(b *testing.B) {
	p := adhoc.NewProvider(adhoc.WithStore(adhoc.NewMemoryStore(1000, 60e9, 1000)))
	if err := p.AddCommand(server, adhoctest.Wizard()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	iq := stanza.IQ{ID: "b", Type: stanza.SetIQ, From: alice, To: server}
	cmd := func(sid, action string) xml.StartElement {
		st := xml.StartElement{Name: xml.Name{Space: adhoc.NS, Local: "command"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: adhoctest.WizardNode}}}
		if sid != "" {
			st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: "sessionid"}, Value: sid}, xml.Attr{Name: xml.Name{Local: "action"}, Value: action})
		}
		return st
	}
	b.ReportAllocs()
	for b.Loop() {
		r, err := p.Handle(ctx, iq, cmd("", ""), nil)
		if err != nil {
			b.Fatal(err)
		}
		sid := ""
		for {
			tok, err := r.Token()
			if err != nil {
				break
			}
			if st, ok := tok.(xml.StartElement); ok && st.Name.Local == "command" {
				for _, a := range st.Attr {
					if a.Name.Local == "sessionid" {
						sid = a.Value
					}
				}
			}
		}
		for _, step := range []struct {
			action string
			form   []xml.Token
		}{{"next", stage1}, {"next", stage2}, {"complete", stage3}} {
			r, err := p.Handle(ctx, iq, cmd(sid, step.action), step.form)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := xmlstream.Copy(xmlstream.Discard(), r); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkMemoryStore measures a session's put, get and end in the default
// store.
func BenchmarkMemoryStore(b *testing.B) {
	st := adhoc.NewMemoryStore(10000, time.Minute, 1<<30)
	ctx := context.Background()
	s := &adhoc.Session{Node: "n", Owner: "o@x", Requester: "o@x/r", Values: []adhoc.Values{{"a": {"b"}}}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		s.ID = strconv.Itoa(i)
		if err := st.Put(ctx, s); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Get(ctx, s.ID); err != nil {
			b.Fatal(err)
		}
		if err := st.End(ctx, s.ID); err != nil {
			b.Fatal(err)
		}
	}
}
