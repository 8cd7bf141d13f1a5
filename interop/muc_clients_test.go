package interop_test

import (
	"encoding/xml"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// This file holds what the group chat tests of real clients share (issue
// 19): a Go occupant, a servertest client in a room of conference.localhost
// beside the client under test, which sees what that client sends to the
// room and speaks to it. muc_slixmpp_test.go, muc_nbxmpp_test.go,
// muc_profanity_test.go and muc_converse_test.go use it.

// conferenceDomain is the group chat service of servertest's server.
const conferenceDomain = "conference.localhost"

// XEP-0045's namespaces, as the Go occupant writes and reads them.
const (
	mucNSJoin  = "http://jabber.org/protocol/muc"
	mucNSOwner = "http://jabber.org/protocol/muc#owner"
)

// mucStanza is what the Go occupant reads of a stanza from a room.
type mucStanza struct {
	XMLName xml.Name
	From    string  `xml:"from,attr"`
	Type    string  `xml:"type,attr"`
	Body    *string `xml:"jabber:client body"`
	Subject *string `xml:"jabber:client subject"`
	User    *struct {
		Item struct {
			Affiliation string `xml:"affiliation,attr"`
			Role        string `xml:"role,attr"`
			JID         string `xml:"jid,attr"`
		} `xml:"http://jabber.org/protocol/muc#user item"`
		Status []struct {
			Code string `xml:"code,attr"`
		} `xml:"http://jabber.org/protocol/muc#user status"`
	} `xml:"http://jabber.org/protocol/muc#user x"`
	Delay *struct {
		From  string `xml:"from,attr"`
		Stamp string `xml:"stamp,attr"`
	} `xml:"urn:xmpp:delay delay"`
	OccupantID *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:occupant-id:0 occupant-id"`
}

// codes are the muc#user status codes of the stanza.
func (m mucStanza) codes() []string {
	if m.User == nil {
		return nil
	}
	var out []string
	for _, s := range m.User.Status {
		out = append(out, s.Code)
	}
	slices.Sort(out)
	return out
}

// mucOccupant is a Go client in a room under a nickname.
type mucOccupant struct {
	t    *testing.T
	c    *servertest.Client
	room string // the room's bare JID
	nick string
	// present are the presences of the others in the room when it
	// entered, by nickname.
	present map[string]mucStanza
}

// decode reads st as a mucStanza; the test fails if it cannot.
func (o *mucOccupant) decode(st servertest.Stanza) mucStanza {
	o.t.Helper()
	var m mucStanza
	if err := st.Decode(&m); err != nil {
		o.t.Fatalf("%s: decode %s: %v", o.nick, st.XML, err)
	}
	return m
}

// enterMUC logs user in and enters room as nick, without history; it
// waits for the self-presence (110), keeping the others' presences before
// it, and returns the occupant and that presence. A room that does not exist is created (201) and configured as
// an instant room (XEP-0045 §10.1.2: an empty form submitted), so that
// others may enter.
func enterMUC(t *testing.T, srv *servertest.Server, user, password, room, nick string) (*mucOccupant, mucStanza) {
	t.Helper()
	o := &mucOccupant{t: t, c: srv.Dial(user, password, ""), room: room, nick: nick}
	ctx := servertest.Context(t, 10*time.Second)
	err := o.c.SendRaw(ctx, `<presence to="`+room+"/"+nick+`"><x xmlns="`+mucNSJoin+`"><history maxstanzas="0"/></x></presence>`)
	if err != nil {
		t.Fatal(err)
	}
	o.present = map[string]mucStanza{}
	self := o.next("its self-presence", func(m mucStanza) bool {
		if m.XMLName.Local == "presence" && m.From != room+"/"+nick && m.Type == "" {
			o.present[strings.TrimPrefix(m.From, room+"/")] = m
		}
		return m.XMLName.Local == "presence" && m.From == room+"/"+nick && (m.Type == "error" || slices.Contains(m.codes(), "110"))
	})
	if self.Type == "error" {
		t.Fatalf("%s cannot enter %s: %+v", nick, room, self)
	}
	if slices.Contains(self.codes(), "201") {
		if _, err := o.c.IQ(ctx, `<iq type="set" to="`+room+`" id="instant"><query xmlns="`+mucNSOwner+`"><x xmlns="jabber:x:data" type="submit"/></query></iq>`); err != nil {
			t.Fatalf("%s: instant room %s: %v", nick, room, err)
		}
	}
	return o, self
}

// next returns the next stanza from the room for which match is true,
// skipping the others; the test fails after 15 seconds, saying it waited
// for what.
func (o *mucOccupant) next(what string, match func(mucStanza) bool) mucStanza {
	o.t.Helper()
	var found mucStanza
	_, ok := o.c.Wait(15*time.Second, func(st servertest.Stanza) bool {
		if !strings.HasPrefix(st.Attrs["from"], o.room) {
			return false
		}
		m := o.decode(st)
		if match(m) {
			found = m
			return true
		}
		return false
	})
	if !ok {
		o.t.Fatalf("%s in %s: no %s within 15s", o.nick, o.room, what)
	}
	return found
}

// say sends a groupchat message with body to the room.
func (o *mucOccupant) say(body string) {
	o.t.Helper()
	var b strings.Builder
	if err := xml.EscapeText(&b, []byte(body)); err != nil {
		o.t.Fatal(err)
	}
	msg := `<message type="groupchat" to="` + o.room + `" id="go-` + randomHex(o.t, 6) + `"><body>` + b.String() + `</body></message>`
	if err := o.c.SendRaw(servertest.Context(o.t, 5*time.Second), msg); err != nil {
		o.t.Fatal(err)
	}
}

// groupchat waits for a groupchat message from nick's room JID with body.
func (o *mucOccupant) groupchat(nick, body string) mucStanza {
	o.t.Helper()
	return o.next("groupchat "+body+" from "+nick, func(m mucStanza) bool {
		return m.XMLName.Local == "message" && m.Type == "groupchat" && m.From == o.room+"/"+nick && m.Body != nil && *m.Body == body
	})
}

// presenceOf waits for an available presence of nick in the room, or an
// unavailable one when unavailable is set.
func (o *mucOccupant) presenceOf(nick string, unavailable bool) mucStanza {
	o.t.Helper()
	what := "available presence of " + nick
	if unavailable {
		what = "unavailable presence of " + nick
	}
	return o.next(what, func(m mucStanza) bool {
		return m.XMLName.Local == "presence" && m.From == o.room+"/"+nick && (m.Type == "unavailable") == unavailable && m.Type != "error"
	})
}

// linesUntil is next that keeps the lines: those the script printed up to the
// first starting with prefix, that one included, and whether it came
// within timeout.
func (s *script) linesUntil(prefix string, timeout time.Duration) ([]string, bool) {
	var lines []string
	deadline := time.After(timeout)
	for {
		select {
		case line, open := <-s.lines:
			if !open {
				return lines, false
			}
			lines = append(lines, line)
			if strings.HasPrefix(line, prefix) {
				return lines, true
			}
		case <-deadline:
			return lines, false
		}
	}
}
