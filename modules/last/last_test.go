package last_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// XEP-0012 over TCP, with raw clients so that each answer is read as the
// server wrote it.

type client struct {
	*servertest.Raw
	t   *testing.T
	jid string
	n   int
}

func login(t *testing.T, srv *servertest.Server, user, password string) *client {
	t.Helper()
	return &client{Raw: srv.RawLogin(user, password, "r"), t: t, jid: user + "@localhost/r"}
}

// answer is an IQ's reply as the client read it.
type answer struct {
	typ, from, to string
	payload       *node  // the first child other than <error/>
	err           string // "type condition" of the <error/>
	text          string // its <text/>
	xml           string
}

// iq sends an IQ of type typ with payload, addressed to to (none when
// empty), and returns the reply.
func (c *client) iq(typ, to, payload string) answer {
	c.t.Helper()
	c.n++
	id := "l" + strconv.Itoa(c.n)
	attr := ""
	if to != "" {
		attr = ` to='` + to + `'`
	}
	c.Write(`<iq type='` + typ + `' id='` + id + `'` + attr + `>` + payload + `</iq>`)
	got := c.Expect(`id=["']` + id + `["'][^>]*(/>|>(?s:.*?)</iq>)`)
	for _, el := range parse(c.t, got) {
		if el.name.Local != "iq" || el.attr["id"] != id {
			continue
		}
		a := answer{typ: el.attr["type"], from: el.attr["from"], to: el.attr["to"], xml: got}
		for _, k := range el.kids {
			if k.name.Local != "error" {
				if a.payload == nil {
					a.payload = k
				}
				continue
			}
			for _, e := range k.kids {
				if e.name.Local == "text" {
					a.text = e.text
				} else {
					a.err = k.attr["type"] + " " + e.name.Local
				}
			}
		}
		if a.to != c.jid {
			c.t.Errorf("reply to %q, want %q: %s", a.to, c.jid, got)
		}
		return a
	}
	c.t.Fatalf("no reply to %s in %q", id, got)
	return answer{}
}

// node is an XML element as parsed.
type node struct {
	name xml.Name
	attr map[string]string
	text string
	kids []*node
}

// parse reads the top-level elements of text as if inside the stream
// (default namespace jabber:client): what the server wrote, or an element
// a test wrote.
func parse(t *testing.T, text string) []*node {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(`<stream xmlns='jabber:client'>` + text + `</stream>`))
	var stack []*node
	var top []*node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return top
		}
		if err != nil {
			t.Fatalf("parse %q: %v", text, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name, attr: map[string]string{}}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				k := a.Name.Local
				if a.Name.Space != "" {
					k = a.Name.Space + ":" + k
				}
				n.attr[k] = a.Value
			}
			if len(stack) == 1 {
				top = append(top, n)
			} else if len(stack) > 1 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 1 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
}

const lastQuery = `<query xmlns='jabber:iq:last'/>`

// seconds returns the seconds of a Last Activity result, failing the test
// for anything else.
func seconds(t *testing.T, r answer) int64 {
	t.Helper()
	if r.typ != "result" || r.payload == nil || r.payload.name != (xml.Name{Space: "jabber:iq:last", Local: "query"}) {
		t.Fatalf("want a jabber:iq:last result, got %s", r.xml)
	}
	if len(r.payload.kids) != 0 || r.payload.text != "" {
		t.Errorf("the query carries more than seconds: %s", r.xml)
	}
	n, err := strconv.ParseInt(r.payload.attr["seconds"], 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("seconds %q: %v", r.payload.attr["seconds"], err)
	}
	return n
}

// setItem gives user's roster an item for contact with subscription sub.
func setItem(t *testing.T, srv *servertest.Server, user, contact string, sub storage.Subscription) {
	t.Helper()
	_, err := srv.Store().UpdateRosterItem(context.Background(), user, contact, func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Subscription = sub
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// available sends available presence and waits for its reflection.
func (c *client) available() {
	c.t.Helper()
	c.Write(`<presence/>`)
	c.Expect(`<presence[^>]* from=["']` + regexp.QuoteMeta(c.jid) + `["']`)
}

// TestLastServer: the server JID answers its uptime (§5).
func TestLastServer(t *testing.T) {
	before := time.Now()
	srv := servertest.Start(t)
	srv.AddUser("romeo", "montague")
	romeo := login(t, srv, "romeo", "montague")
	r := romeo.iq("get", "localhost", lastQuery)
	if n := seconds(t, r); n > int64(time.Since(before)/time.Second)+1 || r.from != "localhost" {
		t.Errorf("uptime %d s, from %q: %s", n, r.from, r.xml)
	}
	for _, to := range []string{"localhost", "romeo@localhost"} {
		r := romeo.iq("get", to, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		if !regexp.MustCompile(`<feature[^>]* var=["']jabber:iq:last["']`).MatchString(r.xml) {
			t.Errorf("disco#info of %s lacks jabber:iq:last: %s", to, r.xml)
		}
	}
}

// TestLastAccount: a bare JID's last activity (§3) as its contacts and
// others see it. juliet's roster lets romeo (from) and nurse (both) see her
// presence; tybalt has none of it, and paris only a 'to' item, juliet's
// subscription to him.
func TestLastAccount(t *testing.T) {
	srv := servertest.Start(t)
	for _, u := range []string{"juliet", "romeo", "nurse", "tybalt", "paris", "rosaline"} {
		srv.AddUser(u, "pw-"+u)
	}
	setItem(t, srv, "juliet", "romeo@localhost", storage.SubFrom)
	setItem(t, srv, "juliet", "nurse@localhost", storage.SubBoth)
	setItem(t, srv, "juliet", "paris@localhost", storage.SubTo)
	setItem(t, srv, "rosaline", "romeo@localhost", storage.SubBoth)
	romeo := login(t, srv, "romeo", "pw-romeo")
	nurse := login(t, srv, "nurse", "pw-nurse")
	tybalt := login(t, srv, "tybalt", "pw-tybalt")
	paris := login(t, srv, "paris", "pw-paris")

	// Never logged in: no time to tell.
	if r := romeo.iq("get", "juliet@localhost", lastQuery); r.err != "cancel item-not-found" {
		t.Errorf("last activity of an account that never logged out: %s", r.xml)
	}
	// Not allowed to see her presence: forbidden, whatever there is to tell.
	for _, c := range []*client{tybalt, paris} {
		if r := c.iq("get", "juliet@localhost", lastQuery); r.err != "auth forbidden" {
			t.Errorf("%s asks juliet: %s", c.jid, r.xml)
		}
	}
	if r := romeo.iq("get", "nobody@localhost", lastQuery); r.err != "cancel service-unavailable" {
		t.Errorf("last activity of no account: %s", r.xml)
	}

	// §3's example: she logged out 903 seconds ago.
	start := time.Now()
	err := srv.Store().UpdateAccount(context.Background(), "juliet", func(a *storage.Account) error {
		a.LastLogout = start.Add(-903 * time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slack := func() int64 { return int64(time.Since(start)/time.Second) + 1 }
	for _, c := range []*client{romeo, nurse} {
		r := c.iq("get", "juliet@localhost", lastQuery)
		if n := seconds(t, r); n < 903 || n > 903+slack() || r.from != "juliet@localhost" {
			t.Errorf("%s asks juliet: %d s from %q, want 903: %s", c.jid, n, r.from, r.xml)
		}
	}
	if r := tybalt.iq("get", "juliet@localhost", lastQuery); r.err != "auth forbidden" {
		t.Errorf("tybalt asks juliet: %s", r.xml)
	}
	// A session that sent no available presence does not count (nor does
	// its login, which would tell she is connected).
	juliet := login(t, srv, "juliet", "pw-juliet")
	if n := seconds(t, romeo.iq("get", "juliet@localhost", lastQuery)); n < 903 || n > 903+slack() {
		t.Errorf("with an unavailable session: %d s, want 903", n)
	}
	// Her own, with no 'to' or to her bare JID, needs no subscription.
	for _, to := range []string{"", "juliet@localhost"} {
		if n := seconds(t, juliet.iq("get", to, lastQuery)); n < 903 || n > 903+slack() {
			t.Errorf("her own (to %q): %d s, want 903", to, n)
		}
	}
	// Available: 0 seconds.
	juliet.available()
	if n := seconds(t, nurse.iq("get", "juliet@localhost", lastQuery)); n != 0 {
		t.Errorf("while she is available: %d s, want 0", n)
	}
	if n := seconds(t, juliet.iq("get", "", lastQuery)); n != 0 {
		t.Errorf("her own while available: %d s, want 0", n)
	}
	// Once her session has ended, the time counts from its end.
	juliet.Close()
	deadline := time.Now().Add(servertest.Wait)
	for online := true; online; {
		online = false
		for _, s := range srv.Sessions() {
			online = online || s.JID.Localpart() == "juliet"
		}
		if online && time.Now().After(deadline) {
			t.Fatal("juliet's session never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := seconds(t, romeo.iq("get", "juliet@localhost", lastQuery)); n > slack() {
		t.Errorf("after her logout: %d s, want at most %d", n, slack())
	}

	// Another account, another roster: romeo may see rosaline's.
	if r := romeo.iq("get", "rosaline@localhost", lastQuery); r.err != "cancel item-not-found" {
		t.Errorf("romeo asks rosaline: %s", r.xml)
	}
	if r := nurse.iq("get", "rosaline@localhost", lastQuery); r.err != "auth forbidden" {
		t.Errorf("nurse asks rosaline: %s", r.xml)
	}
	// A login after the last logout with no session bound: the server
	// stopped before that session's end was written; it counts from the
	// login.
	err = srv.Store().UpdateAccount(context.Background(), "rosaline", func(a *storage.Account) error {
		a.LastLogin, a.LastLogout = start.Add(-100*time.Second), start.Add(-200*time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := seconds(t, romeo.iq("get", "rosaline@localhost", lastQuery)); n < 100 || n > 100+slack() {
		t.Errorf("romeo asks rosaline after an unrecorded logout: %d s, want 100", n)
	}
}
