package muc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"slices"

	"mellium.im/xmpp/jid"
)

// occupant is one nickname in a room and the user behind it. One user may
// hold a nickname from several sessions at once (as Prosody allows): a
// second session of the same account that enters with the nickname
// joins the occupant rather than conflicting with it; the others see one
// occupant, whose presence is that of its latest session.
type occupant struct {
	nick string
	// bare is the user's real bare JID.
	bare jid.JID
	role Role
	// sessions in the order they entered or last sent presence; the last
	// one's presence is the occupant's.
	sessions []*occSession
	// id is the XEP-0421 occupant id.
	id string
	// rate is what the occupant may still send (rate.go).
	rate rateBucket
}

// occSession is one session of the user in the room.
type occSession struct {
	jid jid.JID
	// presence is the children of its last presence, without the MUC
	// payloads (which the room writes itself).
	presence []xml.Token
}

// primary is the session whose presence the occupant shows.
func (o *occupant) primary() *occSession { return o.sessions[len(o.sessions)-1] }

// session returns the occupant's session of full JID j, or nil.
func (o *occupant) session(j jid.JID) *occSession {
	for _, s := range o.sessions {
		if s.jid.Equal(j) {
			return s
		}
	}
	return nil
}

// dropSession removes the session of j; it reports whether one was left.
func (o *occupant) dropSession(j jid.JID) bool {
	o.sessions = slices.DeleteFunc(o.sessions, func(s *occSession) bool { return s.jid.Equal(j) })
	return len(o.sessions) > 0
}

// touch makes s the primary session.
func (o *occupant) touch(s *occSession) {
	o.sessions = slices.DeleteFunc(o.sessions, func(x *occSession) bool { return x == s })
	o.sessions = append(o.sessions, s)
}

// occupantOf returns the occupant that full JID j is in the room as, or
// nil.
func (r *room) occupantOf(j jid.JID) *occupant {
	for _, o := range r.occupants {
		if o.bare.Equal(j.Bare()) && o.session(j) != nil {
			return o
		}
	}
	return nil
}

// occupantsOf returns the occupants of the user bare, in join order.
func (r *room) occupantsOf(bare jid.JID) []*occupant {
	var out []*occupant
	for _, o := range r.list() {
		if o.bare.Equal(bare) {
			out = append(out, o)
		}
	}
	return out
}

// list is the occupants in the order they joined.
func (r *room) list() []*occupant {
	out := make([]*occupant, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.occupants[n])
	}
	return out
}

// addOccupant adds o under its nickname.
func (r *room) addOccupant(o *occupant) {
	r.occupants[o.nick] = o
	r.order = append(r.order, o.nick)
}

// removeOccupant removes the occupant named nick.
func (r *room) removeOccupant(nick string) {
	delete(r.occupants, nick)
	r.order = slices.DeleteFunc(r.order, func(n string) bool { return n == nick })
}

// occupantID is the XEP-0421 id of the user bare in room: an HMAC of
// both under the module's key, stable while the module runs, and
// unguessable from outside (another room's id of the same user says
// nothing either).
func (m *Module) occupantID(room, bare jid.JID) string {
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte(room.String()))
	mac.Write([]byte{0})
	mac.Write([]byte(bare.String()))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}
