package config

import (
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// MUC configures the XEP-0045 group chat service (modules/muc).
type MUC struct {
	// Enabled runs the service (on by default).
	Enabled bool `yaml:"enabled"`
	// Domain is the service's domain; empty: conference. and the server's
	// domain. Users of other servers reach it through federation, so it
	// needs DNS records of its own (an _xmpp-server._tcp SRV record for
	// the service's domain, or a remote s2s.hosts entry); local clients
	// reach it without DNS.
	Domain string `yaml:"domain"`
	// Name is the service's name in disco.
	Name string `yaml:"name"`
	// MaxRooms bounds the rooms of the service; MaxRoomsPerUser the rooms
	// one user created that exist at once; MaxOccupants the occupants of
	// one room; HistoryLength the messages a room keeps; MaxAffiliations
	// the members, admins, owners and outcasts of one room.
	MaxRooms        int `yaml:"max_rooms"`
	MaxRoomsPerUser int `yaml:"max_rooms_per_user"`
	MaxOccupants    int `yaml:"max_occupants"`
	HistoryLength   int `yaml:"history_length"`
	MaxAffiliations int `yaml:"max_affiliations"`
	// MaxSubjectBytes and MaxMessageBytes bound a subject and what a
	// message carries (policy-violation past them); no message gets past
	// limits.max_stanza_bytes anyway.
	MaxSubjectBytes int `yaml:"max_subject_bytes"`
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// ArchiveMaxMessages bounds the messages one persistent room's archive
	// keeps (XEP-0313 on the room's JID), the oldest going first; 0
	// archives no room (the rooms offer no archive and no moderation).
	ArchiveMaxMessages int `yaml:"archive_max_messages"`
	// ArchiveRetention is how long a room's archived message is kept,
	// removed in the background; 0 keeps it until ArchiveMaxMessages
	// pushes it out.
	ArchiveRetention Duration `yaml:"archive_retention"`
	// MessageRate bounds the messages and presence updates one occupant
	// sends to its rooms, per second on average (group chat, private
	// messages, subject changes, status changes), with bursts of up to
	// MessageBurst; past it the stanza is refused with policy-violation
	// (wait) and goes nowhere. 0: no bound. The connection's own pacing
	// (limits.rate) applies anyway.
	MessageRate  float64 `yaml:"message_rate"`
	MessageBurst int     `yaml:"message_burst"`
}

// DefaultMUC is the muc section's default.
func DefaultMUC() MUC {
	return MUC{Enabled: true, Name: "Chatrooms", MaxRooms: 10000, MaxRoomsPerUser: 100, MaxOccupants: 1000,
		HistoryLength: 50, MaxAffiliations: 1000, MaxSubjectBytes: 1024, MaxMessageBytes: 16 << 10,
		ArchiveMaxMessages: 10000, ArchiveRetention: Duration(8760 * time.Hour), MessageRate: 5, MessageBurst: 25}
}

// ServiceDomain is the service's domain for the server domain.
func (m MUC) ServiceDomain(domain string) string {
	if m.Domain != "" {
		return m.Domain
	}
	return "conference." + domain
}

// validate checks the section; bad collects what is wrong.
func (m *MUC) validate(domain string, bad func(format string, args ...any)) {
	if !m.Enabled {
		return
	}
	d := m.ServiceDomain(domain)
	if j, err := jid.New("", d, ""); err != nil || strings.ContainsAny(d, "@/") {
		bad("muc.domain %q: not a domain", d)
	} else if j.Domainpart() == domain {
		bad("muc.domain %q: the server's own domain; the service needs one of its own (conference.%s)", d, domain)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max_rooms", m.MaxRooms}, {"max_rooms_per_user", m.MaxRoomsPerUser}, {"max_occupants", m.MaxOccupants},
		{"history_length", m.HistoryLength}, {"max_affiliations", m.MaxAffiliations},
		{"max_subject_bytes", m.MaxSubjectBytes}, {"max_message_bytes", m.MaxMessageBytes}} {
		if f.v < 1 {
			bad("muc.%s %d: must be positive", f.name, f.v)
		}
	}
	if m.ArchiveMaxMessages < 0 {
		bad("muc.archive_max_messages %d: must be 0 (no archive) or more", m.ArchiveMaxMessages)
	}
	if m.ArchiveRetention < 0 {
		bad("muc.archive_retention %s: must be 0 (no expiry) or more", time.Duration(m.ArchiveRetention))
	}
	if m.MessageRate < 0 {
		bad("muc.message_rate %g: must be 0 (no bound) or more", m.MessageRate)
	}
	if m.MessageRate > 0 && m.MessageBurst < 1 {
		bad("muc.message_burst %d: must be positive when muc.message_rate is set", m.MessageBurst)
	}
}
