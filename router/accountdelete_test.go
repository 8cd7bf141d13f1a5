package router_test

import (
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/adhocd/adhocd/account"
	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

var syncSeq atomic.Int64

// syncClient makes a round trip to the server, so that every stanza the
// server sent the client before it has been read.
func syncClient(t *testing.T, c *servertest.Client) {
	t.Helper()
	id := fmt.Sprintf("sync%d", syncSeq.Add(1))
	if _, err := c.IQ(ctx(t), `<iq type='get' id='`+id+`' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// syncRaw makes a round trip on a raw stream and returns what it received
// since the last read.
func syncRaw(r *servertest.Raw) string {
	id := fmt.Sprintf("sync%d", syncSeq.Add(1))
	r.Write(`<iq type='get' id='` + id + `' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	return r.Expect(`id="` + id + `"`)
}

// aboutDave syncs c and returns, in order, what it received that concerns
// dave@localhost: presence from any of its JIDs as "presence TYPE FROM" and
// roster pushes of its item as "push SUBSCRIPTION".
func aboutDave(t *testing.T, c *servertest.Client) []string {
	t.Helper()
	syncClient(t, c)
	var out []string
	for {
		st, ok := c.Wait(20*time.Millisecond, nil)
		if !ok {
			return out
		}
		switch {
		case st.Name == "presence" && strings.HasPrefix(st.Attrs["from"], "dave@localhost"):
			typ := st.Attrs["type"]
			if typ == "" {
				typ = "available"
			}
			out = append(out, "presence "+typ+" "+st.Attrs["from"])
		case st.Name == "iq" && st.Attrs["type"] == "set":
			var push struct {
				Items []rosterItem `xml:"jabber:iq:roster query>item"`
			}
			if err := xml.Unmarshal([]byte(st.XML), &push); err != nil {
				t.Fatalf("roster push %q: %v", st.XML, err)
			}
			for _, it := range push.Items {
				if it.JID == "dave@localhost" {
					out = append(out, "push "+it.Subscription)
				}
			}
		case st.Name == "message" && strings.HasPrefix(st.Attrs["from"], "dave@localhost"):
			out = append(out, "message "+st.Attrs["from"])
		}
	}
}

// sortedUnavailable sorts the leading run of unavailable presence (the
// account's resources end in no particular order) and leaves the rest.
func sortedUnavailable(ev []string) []string {
	n := 0
	for n < len(ev) && strings.HasPrefix(ev[n], "presence unavailable ") {
		n++
	}
	out := slices.Clone(ev)
	slices.Sort(out[:n])
	return out
}

var sessionIDRE = regexp.MustCompile(`sessionid="([^"]+)"`)

// TestDeletedAccountRecreatedInheritsNothing deletes dave, who has two
// available resources, a mutual subscription with carol, erin subscribed to
// him, a subscription to frank, a request pending at gina, one of hank's
// pending at him, an offline message and a running ad-hoc command; then makes
// dave again under the same name. Contacts are mellium clients
// (servertest.Client, mellium.im/xmpp v0.22), dave is the raw client
// (servertest.Raw) so that it can bind the same resource again. It checks
// what RFC 6121 §3.2.3, §3.3.3 and §4.5.2 have each contact's online
// resources get, exactly: unavailable presence from each of dave's resources
// it had presence from, unsubscribe from dave where dave was subscribed to it
// or asked to be, unsubscribed where it was subscribed to dave or asked to
// be, then a roster push of the removal where dave was on its roster. The new
// dave has no roster, no pending request, no offline message and cannot
// continue the old command session; no contact lists dave any more, or gets
// the new dave's presence. It runs with command sessions in memory and with
// adhoc.persist (kept in the bbolt file too).
func TestDeletedAccountRecreatedInheritsNothing(t *testing.T) {
	for _, persist := range []bool{false, true} {
		t.Run(fmt.Sprintf("persist=%v", persist), func(t *testing.T) { deleteAndRecreate(t, persist) })
	}
}

func deleteAndRecreate(t *testing.T, persist bool) {
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())},
		func(c *config.Config) { c.Adhoc.Persist = persist })
	for _, u := range []string{"dave", "carol", "erin", "frank", "gina", "hank"} {
		srv.AddUser(u, "pw-"+u)
	}
	c := map[string]*servertest.Client{}
	names := []string{"carol", "erin", "frank", "gina", "hank"}
	for _, u := range names {
		c[u] = srv.Dial(u, "pw-"+u, "")
		rosterOf(t, c[u]) // interested in roster pushes
		online(t, c[u])
	}
	phone := srv.RawLogin("dave", "pw-dave", "phone")
	desk := srv.RawLogin("dave", "pw-dave", "desk")
	for _, r := range []*servertest.Raw{phone, desk} {
		// Available, but at a negative priority: messages to the bare JID
		// go to offline storage (RFC 6121 §8.5.2.1.1, XEP-0160).
		r.Write(`<presence><priority>-1</priority></presence>`)
		syncRaw(r)
	}
	send := func(cl *servertest.Client, s string) {
		t.Helper()
		if err := cl.SendRaw(ctx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"carol", "erin", "hank"} {
		send(c[u], `<presence type='subscribe' to='dave@localhost'/>`)
		syncClient(t, c[u])
	}
	phone.Write(`<presence type='subscribed' to='carol@localhost'/>` +
		`<presence type='subscribed' to='erin@localhost'/>` +
		`<presence type='subscribe' to='carol@localhost'/>` +
		`<presence type='subscribe' to='frank@localhost'/>` +
		`<presence type='subscribe' to='gina@localhost'/>`)
	syncRaw(phone)
	send(c["carol"], `<presence type='subscribed' to='dave@localhost'/>`)
	send(c["frank"], `<presence type='subscribed' to='dave@localhost'/>`)
	want := map[string]rosterItem{
		"carol": {Subscription: "both"},
		"erin":  {Subscription: "to"},
		"frank": {Subscription: "from"},
		"hank":  {Subscription: "none", Ask: "subscribe"},
	}
	for _, u := range names {
		syncClient(t, c[u])
		it, listed := rosterOf(t, c[u])["dave@localhost"]
		w, wantListed := want[u]
		if listed != wantListed || it.Subscription != w.Subscription || it.Ask != w.Ask {
			t.Fatalf("before the delete, %s's item for dave: %+v (listed %v), want %+v (listed %v)", u, it, listed, w, wantListed)
		}
	}
	// Carol and erin have dave's presence from both resources; the others
	// none.
	for _, u := range names {
		var got []string
		for _, ev := range aboutDave(t, c[u]) {
			if strings.HasPrefix(ev, "presence available ") && !slices.Contains(got, ev) {
				got = append(got, ev)
			}
		}
		slices.Sort(got)
		var w []string
		if u == "carol" || u == "erin" {
			w = []string{"presence available dave@localhost/desk", "presence available dave@localhost/phone"}
		}
		if !slices.Equal(got, w) {
			t.Fatalf("before the delete, %s has dave's presence %v, want %v", u, got, w)
		}
	}

	// An offline message for dave, and a command session of his.
	send(c["carol"], `<message type='chat' to='dave@localhost'><body>for the old dave</body></message>`)
	syncClient(t, c["carol"])
	node := adhoctest.WizardNode
	phone.Write(`<iq type='set' id='wiz1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + node + `' action='execute'/></iq>`)
	got := phone.Expect(`id="wiz1"[\s\S]*</iq>`)
	sid := sessionIDRE.FindStringSubmatch(got)
	if sid == nil || !strings.Contains(got, `status="executing"`) {
		t.Fatalf("the wizard did not start a session: %q", got)
	}
	for _, u := range names {
		aboutDave(t, c[u]) // what came before the delete
	}

	// The delete, as `adhocd user delete` sends it to the running server.
	resp, err := server.Control(ctx(t), srv.Dir, account.Request{Op: "delete", User: "dave@localhost"})
	if err != nil || resp.Error != "" {
		t.Fatalf("delete: %v %q", err, resp.Error)
	}
	for name, r := range map[string]*servertest.Raw{"phone": phone, "desk": desk} {
		if got, _ := r.ClosedByServer(wait); !strings.Contains(got, "<not-authorized") || !strings.Contains(got, "the account was deleted") {
			t.Fatalf("dave/%s after the delete: %q", name, got)
		}
	}
	unavailable := []string{"presence unavailable dave@localhost/desk", "presence unavailable dave@localhost/phone"}
	wantEvents := map[string][]string{
		"carol": append(slices.Clone(unavailable), "presence unsubscribe dave@localhost", "presence unsubscribed dave@localhost", "push remove"),
		"erin":  append(slices.Clone(unavailable), "presence unsubscribed dave@localhost", "push remove"),
		"frank": {"presence unsubscribe dave@localhost", "push remove"},
		"gina":  {"presence unsubscribe dave@localhost"}, // the request was not on her roster
		"hank":  {"presence unsubscribed dave@localhost", "push remove"},
	}
	for _, u := range names {
		if got := sortedUnavailable(aboutDave(t, c[u])); !slices.Equal(got, wantEvents[u]) {
			t.Errorf("after the delete %s got %q, want %q", u, got, wantEvents[u])
		}
		if it, listed := rosterOf(t, c[u])["dave@localhost"]; listed {
			t.Errorf("after the delete %s's roster still lists dave: %+v", u, it)
		}
	}

	// Dave again, under the same name, on the same resource.
	resp, err = server.Control(ctx(t), srv.Dir, account.Request{Op: "add", User: "dave@localhost", Password: "new-dave"})
	if err != nil || resp.Error != "" {
		t.Fatalf("add again: %v %q", err, resp.Error)
	}
	again := srv.RawLogin("dave", "new-dave", "phone")
	again.Write(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>`)
	if got := again.Expect(`id="r2"[\s\S]*?(</iq>|/>)`); strings.Contains(got, "<item") {
		t.Errorf("the new dave has the old roster: %q", got)
	}
	again.Write(`<presence/>`)
	got = syncRaw(again)
	for _, bad := range []string{"<message", `type="subscribe"`, `from="carol@`, `from="erin@`, `from="frank@`, "for the old dave"} {
		if strings.Contains(got, bad) {
			t.Errorf("the new dave's first presence brought %s of the old one: %q", bad, got)
		}
	}
	again.Write(`<iq type='set' id='wiz2' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='` + node + `' sessionid='` + sid[1] + `' action='next'>` +
		`<x xmlns='jabber:x:data' type='submit'/></command></iq>`)
	got = again.Expect(`id="wiz2"[\s\S]*</iq>`)
	if !strings.Contains(got, `type="error"`) || !(strings.Contains(got, "<session-expired") || strings.Contains(got, "<bad-sessionid")) {
		t.Errorf("the new dave continued the old dave's command session: %q", got)
	}
	for _, u := range names {
		if got := aboutDave(t, c[u]); len(got) != 0 {
			t.Errorf("%s got %q from the new dave, with no subscription between them", u, got)
		}
	}
	// Gina logging in again is not asked by dave any more.
	gina := srv.Dial("gina", "pw-gina", "")
	online(t, gina)
	if got := aboutDave(t, gina); len(got) != 0 {
		t.Errorf("gina's next login brought %q from dave", got)
	}
}
