package muc

import (
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// Affiliation is a user's long-lived standing in a room (XEP-0045 §5.2).
type Affiliation string

// The affiliations, highest first.
const (
	Owner   Affiliation = "owner"
	Admin   Affiliation = "admin"
	Member  Affiliation = "member"
	None    Affiliation = "none"
	Outcast Affiliation = "outcast"
)

// rank orders affiliations: owner 4 … outcast 0; -1 for an unknown name.
func (a Affiliation) rank() int {
	switch a {
	case Owner:
		return 4
	case Admin:
		return 3
	case Member:
		return 2
	case None:
		return 1
	case Outcast:
		return 0
	}
	return -1
}

// Role is an occupant's standing while it is in the room (XEP-0045 §5.1).
type Role string

// The roles, highest first.
const (
	Moderator   Role = "moderator"
	Participant Role = "participant"
	Visitor     Role = "visitor"
	RoleNone    Role = "none"
)

func (r Role) rank() int {
	switch r {
	case Moderator:
		return 3
	case Participant:
		return 2
	case Visitor:
		return 1
	case RoleNone:
		return 0
	}
	return -1
}

// Whois values of muc#roomconfig_whois.
const (
	WhoisModerators = "moderators"
	WhoisAnyone     = "anyone"
)

// AllowPM values of muc#roomconfig_allowpm: who may send private messages.
const (
	PMAnyone       = "anyone"
	PMParticipants = "participants"
	PMModerators   = "moderators"
	PMNone         = "none"
)

// Config is a room's configuration (XEP-0045 §10.2, FORM_TYPE
// muc#roomconfig). Its fields are exported so that a store can serialise it.
type Config struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Persistent  bool   `json:"persistent,omitempty"`
	Public      bool   `json:"public,omitempty"`
	MembersOnly bool   `json:"members_only,omitempty"`
	Moderated   bool   `json:"moderated,omitempty"`
	// Password is the room secret; the room is password-protected when it
	// is not empty.
	Password string `json:"password,omitempty"`
	// MaxUsers bounds the occupants (within Options.MaxOccupants).
	MaxUsers int `json:"max_users"`
	// Whois is who sees occupants' real JIDs: WhoisModerators
	// (semi-anonymous) or WhoisAnyone (non-anonymous).
	Whois string `json:"whois"`
	// ChangeSubject lets participants change the subject, not only
	// moderators.
	ChangeSubject bool `json:"change_subject,omitempty"`
	// HistoryLength is how many messages the room keeps and sends at join
	// (within Options.HistoryLength).
	HistoryLength int `json:"history_length"`
	// AllowPM is who may send private messages (PMAnyone …).
	AllowPM string `json:"allow_pm"`
	// Archive keeps the room's messages in its archive (XEP-0313) while
	// the room is persistent and the service archives
	// (Options.ArchiveMaxMessages); on by default, as Prosody's
	// muc_log_by_default.
	Archive bool `json:"archive"`
}

// HistoryEntry is one message the room keeps for those who join later.
type HistoryEntry struct {
	// Nick is the sender's nickname then; Stamp when the room got it.
	Nick  string    `json:"nick"`
	Stamp time.Time `json:"stamp"`
	// Payload is the message's children as the room relayed them
	// (wire.Serialize), its body and occupant id among them.
	Payload string `json:"payload"`
	// ID is the message's id attribute, kept as XEP-0045's stable ids ask.
	ID string `json:"id,omitempty"`
	// StanzaID is the message's id in the room's archive (XEP-0359), ""
	// when it was not archived; Payload carries its <stanza-id/> then.
	StanzaID string `json:"stanza_id,omitempty"`
}

// State is what a room is, apart from who is in it: what a persistent
// room keeps across restarts, as JSON in the store (storage.Rooms; see
// persist.go), but for its History, which comes back from the room's
// archive.
type State struct {
	// JID is the room's bare JID.
	JID     string    `json:"jid"`
	Created time.Time `json:"created"`
	// Creator is the bare JID of the user who created the room, which
	// Options.MaxRoomsPerUser counts.
	Creator string `json:"creator"`
	Config  Config `json:"config"`
	// Affiliations maps bare JIDs to affiliations other than none.
	Affiliations map[string]Affiliation `json:"affiliations"`
	// Subject and the nickname of who set it ("" for the room itself).
	Subject   string         `json:"subject,omitempty"`
	SubjectBy string         `json:"subject_by,omitempty"`
	History   []HistoryEntry `json:"history,omitempty"`
	// Locked is set from creation until the owner configures the room
	// (XEP-0045 §10.1): no one else may enter.
	Locked bool `json:"locked,omitempty"`
}

// room is a State and its occupants, guarded by mu. The router calls the
// module from many sessions at once; every change of one room happens under
// its lock, and so do the stanzas it sends, so that every occupant sees the
// room's events in one order (Host.Send only queues, it never waits on a
// client's socket).
type room struct {
	mu  sync.Mutex
	jid jid.JID
	State
	// occupants by nickname, and in the order they joined (for presence
	// lists).
	occupants map[string]*occupant
	order     []string
	// gone is set when the room was destroyed: a caller that found it in
	// the module's map looks again.
	gone bool
	// stored is set while the store holds the room (persist.go);
	// historyLoaded once History holds what the room's archive gave back
	// after a start (set at once for a room made since); archiveOn while
	// the service archives rooms at all.
	stored, historyLoaded, archiveOn bool
}

// affiliation is bare's affiliation.
func (r *room) affiliation(bare string) Affiliation {
	if a, ok := r.Affiliations[bare]; ok {
		return a
	}
	return None
}

// setAffiliation records a (none removes the entry).
func (r *room) setAffiliation(bare string, a Affiliation) {
	if a == None {
		delete(r.Affiliations, bare)
		return
	}
	r.Affiliations[bare] = a
}

// roleFor is the role an occupant of affiliation a gets when it enters
// (XEP-0045 §5.1.2).
func (r *room) roleFor(a Affiliation) Role {
	switch a {
	case Owner, Admin:
		return Moderator
	case Member:
		return Participant
	case None:
		if r.Config.Moderated {
			return Visitor
		}
		return Participant
	}
	return RoleNone
}

// nonAnonymous reports whether every occupant sees real JIDs.
func (r *room) nonAnonymous() bool { return r.Config.Whois == WhoisAnyone }

// maxHistory is how many messages the room keeps.
func (r *room) maxHistory(limit int) int {
	if r.Config.HistoryLength < 0 {
		return 0
	}
	return min(r.Config.HistoryLength, limit)
}
