package muc_test

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// The tests run a real server with the service over TCP and read what
// raw clients (STARTTLS, SASL PLAIN, a chosen resource) receive, parsed
// into trees. "Nothing arrived" is checked with a sync: a session's
// stanzas are handled in order and the service sends what they cause
// before it answers the next, so once a sender's disco query to the service
// is answered its earlier stanzas have had their effect, and once a
// recipient's own query is answered it has read what was queued for it
// before.

const (
	service   = "conference.localhost"
	nsMUC     = "http://jabber.org/protocol/muc"
	nsUser    = nsMUC + "#user"
	nsOwner   = nsMUC + "#owner"
	nsAdmin   = nsMUC + "#admin"
	nsXData   = "jabber:x:data"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsOccID   = "urn:xmpp:occupant-id:0"
)

var seq atomic.Int64

func nextID() string { return "t" + strconv.FormatInt(seq.Add(1), 10) }

// env is a server running the service, with accounts made on demand.
type env struct {
	t     *testing.T
	srv   *servertest.Server
	users map[string]bool
}

func newEnv(t *testing.T, opts muc.Options) *env {
	t.Helper()
	// The default module table's service is off: this test's, with its
	// options, serves the domain.
	off := func(c *config.Config) { c.MUC.Enabled = false }
	return &env{t: t, srv: servertest.StartWith(t, []server.Option{server.WithModules(muc.New(opts))}, off), users: map[string]bool{}}
}

// login logs user in with resource, making the account first.
func (e *env) login(user, resource string) *client {
	e.t.Helper()
	if !e.users[user] {
		e.srv.AddUser(user, "pw-"+user)
		e.users[user] = true
	}
	raw, jid := e.srv.RawLogin(user, "pw-"+user, resource), user+"@localhost/"+resource
	return &client{Raw: raw, t: e.t, jid: jid, in: servertest.NewInbox(e.t, raw, jid, e.parse)}
}

// parse reads one stanza the server wrote into a tree.
func (e *env) parse(el string) (*servertest.Node, error) {
	return servertest.ParseXML(e.t, el)[0], nil
}

// client is one logged-in raw session with what it received and has not
// looked at yet.
type client struct {
	*servertest.Raw
	t   *testing.T
	jid string
	in  *servertest.Inbox[*servertest.Node]
}

// next returns the first stanza received that match accepts, waiting up
// to servertest.Wait for it.
func (c *client) next(what string, match func(*servertest.Node) bool) *servertest.Node {
	c.t.Helper()
	return c.in.Next(what, match)
}

// take removes and returns the pending stanzas match accepts.
func (c *client) take(match func(*servertest.Node) bool) []*servertest.Node {
	return c.in.Take(match)
}

// iq sends an IQ of type typ to to with payload and returns the answer.
func (c *client) iq(typ, to, payload string) *servertest.Node {
	c.t.Helper()
	id := nextID()
	c.Write(`<iq type='` + typ + `' id='` + id + `' to='` + to + `'>` + payload + `</iq>`)
	return c.next("answer to IQ "+id, func(s *servertest.Node) bool {
		return s.Name.Local == "iq" && s.Attr["id"] == id
	})
}

// result is iq that fails the test unless the answer is a result.
func (c *client) result(typ, to, payload string) *servertest.Node {
	c.t.Helper()
	a := c.iq(typ, to, payload)
	if a.Attr["type"] != "result" {
		c.t.Fatalf("%s: IQ to %s %s: %s", c.jid, to, payload, a.Canon())
	}
	return a
}

// sync waits for the answer to a disco query of the service (see the top
// of the file).
func (c *client) sync() {
	c.t.Helper()
	c.result("get", service, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
}

// settle syncs the sender, then each recipient.
func settle(sender *client, recipients ...*client) {
	sender.t.Helper()
	sender.sync()
	for _, r := range recipients {
		r.sync()
	}
}

// none fails the test if a stanza that match accepts is pending.
func (c *client) none(what string, match func(*servertest.Node) bool) {
	c.t.Helper()
	if got := c.take(match); len(got) > 0 {
		c.t.Fatalf("%s: unexpected %s: %s", c.jid, what, got[0].Canon())
	}
}

// room is the JID of a room of the service; occ of an occupant.
func room(name string) string      { return name + "@" + service }
func occ(name, nick string) string { return room(name) + "/" + nick }

// join sends presence to room/nick with extra inside the muc <x/> and
// waits for the self-presence (110), which it returns.
func (c *client) join(name, nick, extra string) *servertest.Node {
	c.t.Helper()
	c.Write(`<presence to='` + occ(name, nick) + `'><x xmlns='` + nsMUC + `'>` + extra + `</x></presence>`)
	return c.next("self-presence in "+name, func(s *servertest.Node) bool {
		return isPresence(s, occ(name, nick), "") && slices.Contains(statuses(s), "110")
	})
}

// joinErr sends the join and returns the error condition of the answer.
func (c *client) joinErr(name, nick, extra string) string {
	c.t.Helper()
	c.Write(`<presence to='` + occ(name, nick) + `'><x xmlns='` + nsMUC + `'>` + extra + `</x></presence>`)
	s := c.next("presence error from "+name, func(s *servertest.Node) bool {
		return isPresence(s, occ(name, nick), "error")
	})
	return condition(s)
}

// create makes an instant room (XEP-0045 §10.1.2) with nick as its owner,
// its configuration's fields set as given (var=value pairs).
func (c *client) create(name, nick string, config ...string) {
	c.t.Helper()
	self := c.join(name, nick, "")
	if !slices.Contains(statuses(self), "201") {
		c.t.Fatalf("%s: room %s not created: %s", c.jid, name, self.Canon())
	}
	c.configure(name, config...)
	// The subject comes after the self-presence: take it.
	c.next("subject of "+name, func(s *servertest.Node) bool { return child(s, "jabber:client", "subject") != nil })
}

// configure submits the configuration form with the fields given.
func (c *client) configure(name string, config ...string) {
	c.t.Helper()
	c.result("set", room(name), `<query xmlns='`+nsOwner+`'>`+form(config...)+`</query>`)
}

// form is a muc#roomconfig submission of var=value pairs.
func form(config ...string) string {
	var b strings.Builder
	b.WriteString(`<x xmlns='` + nsXData + `' type='submit'>`)
	if len(config) > 0 {
		b.WriteString(`<field var='FORM_TYPE'><value>` + nsMUC + `#roomconfig</value></field>`)
	}
	for _, kv := range config {
		k, v, _ := strings.Cut(kv, "=")
		b.WriteString(`<field var='` + k + `'><value>` + v + `</value></field>`)
	}
	b.WriteString(`</x>`)
	return b.String()
}

// say sends a groupchat message to the room.
func (c *client) say(name, body string) {
	c.Write(`<message to='` + room(name) + `' type='groupchat' id='` + nextID() + `'><body>` + body + `</body></message>`)
}

// heard waits for the groupchat message with body from room/nick.
func (c *client) heard(name, nick, body string) *servertest.Node {
	c.t.Helper()
	return c.next("message "+body+" from "+nick, func(s *servertest.Node) bool {
		return s.Name.Local == "message" && s.Attr["from"] == occ(name, nick) && s.Attr["type"] == "groupchat" && text(s, "body") == body
	})
}

func isPresence(s *servertest.Node, from, typ string) bool {
	return s.Name.Local == "presence" && s.Attr["from"] == from && s.Attr["type"] == typ
}

// presenceFrom matches presence of type typ from from.
func presenceFrom(from, typ string) func(*servertest.Node) bool {
	return func(s *servertest.Node) bool { return isPresence(s, from, typ) }
}

// child is n's first child named local in space, or nil.
func child(n *servertest.Node, space, local string) *servertest.Node {
	if n == nil {
		return nil
	}
	for _, k := range n.Kids {
		if k.Name.Space == space && k.Name.Local == local {
			return k
		}
	}
	return nil
}

// text is the text of n's jabber:client child local.
func text(n *servertest.Node, local string) string {
	if k := child(n, "jabber:client", local); k != nil {
		return k.Text
	}
	return ""
}

// statuses are the muc#user status codes of a stanza.
func statuses(n *servertest.Node) []string {
	var out []string
	if x := child(n, nsUser, "x"); x != nil {
		for _, k := range x.Kids {
			if k.Name.Local == "status" {
				out = append(out, k.Attr["code"])
			}
		}
	}
	return out
}

// item is the muc#user item of a presence (attributes; nil maps read as
// empty).
func item(n *servertest.Node) *servertest.Node {
	return child(child(n, nsUser, "x"), nsUser, "item")
}

// condition is the defined condition of a stanza's error, "type
// condition", or "".
func condition(n *servertest.Node) string {
	e := child(n, "jabber:client", "error")
	if e == nil {
		return ""
	}
	for _, k := range e.Kids {
		if k.Name.Space == nsStanzas && k.Name.Local != "text" {
			return e.Attr["type"] + " " + k.Name.Local
		}
	}
	return e.Attr["type"]
}

// occupantID is the XEP-0421 id of a stanza, or "".
func occupantID(n *servertest.Node) string {
	if k := child(n, nsOccID, "occupant-id"); k != nil {
		return k.Attr["id"]
	}
	return ""
}

// features are the disco#info features of an answer.
func features(a *servertest.Node) []string {
	var out []string
	for _, k := range child(a, "http://jabber.org/protocol/disco#info", "query").Kids {
		if k.Name.Local == "feature" {
			out = append(out, k.Attr["var"])
		}
	}
	return out
}

// formValue is the value of field v in the data form under parent.
func formValue(parent *servertest.Node, v string) (string, bool) {
	x := child(parent, nsXData, "x")
	if x == nil {
		return "", false
	}
	for _, f := range x.Kids {
		if f.Name.Local == "field" && f.Attr["var"] == v {
			if val := child(f, nsXData, "value"); val != nil {
				return val.Text, true
			}
			return "", true
		}
	}
	return "", false
}

// wantCond fails the test unless the answer's error is cond.
func wantCond(t *testing.T, what string, a *servertest.Node, cond string) {
	t.Helper()
	if got := condition(a); got != cond {
		t.Fatalf("%s: error %q, want %q: %s", what, got, cond, a.Canon())
	}
}
