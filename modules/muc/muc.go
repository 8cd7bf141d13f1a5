package muc

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Options are the service's domain and bounds. A zero field takes the
// default named beside it.
type Options struct {
	// Domain is the service's domain; default "conference." and the
	// server's domain.
	Domain string
	// Name is the service's name in disco (default "Chatrooms").
	Name string
	// MaxRooms bounds the rooms of the service (default 10000): a room
	// past it is not created (resource-constraint).
	MaxRooms int
	// MaxRoomsPerUser bounds the rooms one user created that exist at
	// once (default 100): a room past it is not created (not-allowed).
	MaxRoomsPerUser int
	// MaxOccupants bounds the occupants of one room, owners and admins
	// included (default 1000); a room's own maximum (muc#roomconfig_maxusers)
	// is at most this.
	MaxOccupants int
	// HistoryLength bounds the messages a room keeps (default 50); a
	// room's own length (muc#maxhistoryfetch) is at most this, 20 at
	// creation.
	HistoryLength int
	// MaxSubjectBytes bounds a subject (default 1024 bytes), MaxMessageBytes
	// what a message carries, its children as XML (default 16 KiB).
	// Longer ones are refused with policy-violation.
	MaxSubjectBytes, MaxMessageBytes int
	// MaxAffiliations bounds the affiliations (members, admins, owners,
	// outcasts) of one room (default 1000): one more is refused with
	// resource-constraint.
	MaxAffiliations int
	// ArchiveMaxMessages bounds the messages a persistent room's archive
	// keeps (default 10000), the oldest going first; negative: no room is
	// archived (archive.go).
	ArchiveMaxMessages int
	// ArchiveRetention is how long an archived message is kept; zero
	// keeps it until ArchiveMaxMessages pushes it out.
	ArchiveRetention time.Duration
	// MessageRate bounds the messages and presence updates one occupant
	// sends, per second on average, with bursts of MessageBurst (at least
	// 1); past it they are refused with policy-violation (rate.go). Zero:
	// no bound.
	MessageRate  float64
	MessageBurst int
}

// Defaults of Options.
const (
	defaultMaxRooms        = 10000
	defaultMaxRoomsPerUser = 100
	defaultMaxOccupants    = 1000
	defaultHistoryLength   = 50
	defaultRoomHistory     = 20
	defaultMaxSubject      = 1024
	defaultMaxMessage      = 16 << 10
	defaultMaxAffiliations = 1000
	defaultArchiveMessages = 10000
	// maxSessions bounds the sessions that share one nickname.
	maxSessions = 10
)

func (o *Options) setDefaults(server string) {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Domain == "" {
		o.Domain = "conference." + server
	}
	if o.Name == "" {
		o.Name = "Chatrooms"
	}
	def(&o.MaxRooms, defaultMaxRooms)
	def(&o.MaxRoomsPerUser, defaultMaxRoomsPerUser)
	def(&o.MaxOccupants, defaultMaxOccupants)
	def(&o.HistoryLength, defaultHistoryLength)
	def(&o.MaxSubjectBytes, defaultMaxSubject)
	def(&o.MaxMessageBytes, defaultMaxMessage)
	def(&o.MaxAffiliations, defaultMaxAffiliations)
	if o.ArchiveMaxMessages == 0 {
		o.ArchiveMaxMessages = defaultArchiveMessages
	}
}

// Module is the group chat service on the module API: a DomainHandler
// for its domain, and the server's disco items listing it.
type Module struct {
	opts Options
	// fromConfig takes opts from the server's muc section at Start
	// (FromConfig); off is set when that section disables the service.
	fromConfig, off bool
	h               modules.Host
	log             *slog.Logger
	// domain is the service's JID.
	domain jid.JID
	// key is the HMAC key of occupant ids, random per start.
	key []byte
	// now is the clock (history stamps).
	now func() time.Time
	// store keeps the persistent rooms and their archives (persist.go,
	// archive.go); stop and done end the archive's expiry.
	store storage.Store
	stop  context.CancelFunc
	done  sync.WaitGroup

	// mu guards rooms and created. Lock order: a room's lock, then mu;
	// mu is never held while waiting for a room's lock.
	mu    sync.Mutex
	rooms map[string]*room
	// created counts the existing rooms each bare JID created.
	created map[string]int
	// fwd is the IQ requests forwarded to occupants (forward.go).
	fwd forwards
	// metrics are the service's instruments (metrics.go).
	metrics instruments
}

// New returns the group chat service with opts.
func New(opts Options) *Module { return &Module{opts: opts, now: time.Now} }

// FromConfig is the constructor of the default module table: a module
// whose options come from the server's muc section at Start (or that
// serves nothing when muc.enabled is off).
func FromConfig() modules.Module { return &Module{fromConfig: true, now: time.Now} }

// options are the module's options from the muc section.
func options(c config.MUC, domain string) Options {
	return Options{Domain: c.ServiceDomain(domain), Name: c.Name, MaxRooms: c.MaxRooms, MaxRoomsPerUser: c.MaxRoomsPerUser,
		MaxOccupants: c.MaxOccupants, HistoryLength: c.HistoryLength, MaxSubjectBytes: c.MaxSubjectBytes,
		MaxMessageBytes: c.MaxMessageBytes, MaxAffiliations: c.MaxAffiliations,
		ArchiveMaxMessages: archiveMax(c.ArchiveMaxMessages), ArchiveRetention: c.ArchiveRetention.D(),
		MessageRate: c.MessageRate, MessageBurst: c.MessageBurst}
}

// archiveMax is Options.ArchiveMaxMessages for muc.archive_max_messages,
// whose 0 archives nothing.
func archiveMax(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.Module        = (*Module)(nil)
	_ modules.DomainHandler = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "muc" }

// Start implements modules.Module: it takes its domain, loads the
// persistent rooms and the occupant id key (persist.go), starts the
// archive's expiry and registers the service among the server's disco
// items.
func (m *Module) Start(ctx context.Context, h modules.Host) error {
	if m.fromConfig {
		c := h.Config().MUC
		if !c.Enabled {
			m.off = true
			return nil
		}
		m.opts = options(c, h.Domain().Domainpart())
	}
	m.opts.setDefaults(h.Domain().Domainpart())
	d, err := jid.New("", m.opts.Domain, "")
	if err != nil {
		return fmt.Errorf("muc: domain %q: %w", m.opts.Domain, err)
	}
	m.h, m.log, m.domain, m.store = h, h.Logger(), d, h.Store()
	m.rooms = make(map[string]*room)
	m.created = make(map[string]int)
	if err := m.load(ctx); err != nil {
		return err
	}
	m.startExpiry()
	m.startMetrics(h)
	h.Disco().AddNodeHandler(modules.ServiceItem{JID: m.domain, Name: m.opts.Name})
	return m.addCommands(h)
}

// Stop implements modules.Module: the archive's expiry ends, and the
// rooms in memory with their occupants (the server's streams are closed by
// then); the persistent rooms are in the store, written at each change.
func (m *Module) Stop(context.Context) error {
	m.stopMetrics()
	if m.stop != nil {
		m.stop()
		m.done.Wait()
		m.stop = nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rooms = map[string]*room{}
	m.created = map[string]int{}
	return nil
}

// Domains implements modules.DomainHandler.
func (m *Module) Domains() []string {
	if m.off {
		return nil
	}
	return []string{m.domain.Domainpart()}
}

// HandleStanza implements modules.DomainHandler: iq, message and presence
// a local session sent to the service or to one of its rooms. What it
// sends because of a stanza is sent even when the sender's stream ends
// meanwhile (the unavailable presence of a session that ended, say).
func (m *Module) HandleStanza(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error {
	ctx = context.WithoutCancel(ctx)
	typ := el.Attr("type")
	switch el.Start.Name.Local {
	case "iq":
		if typ == "result" || typ == "error" {
			m.forwardAnswer(ctx, from, el, to)
			return nil
		}
		return m.handleIQ(ctx, from, el, to)
	case "message":
		if typ == "error" {
			return nil
		}
		return m.handleMessage(ctx, from, el, to)
	case "presence":
		return m.handlePresence(ctx, from, el, to)
	}
	return nil
}

// lookup returns the room named local, locked, or nil.
func (m *Module) lookup(local string) *room {
	for {
		m.mu.Lock()
		r := m.rooms[local]
		m.mu.Unlock()
		if r == nil {
			return nil
		}
		r.mu.Lock()
		if !r.gone {
			return r
		}
		r.mu.Unlock()
	}
}

// open returns the room named local, locked, creating it for creator if
// it does not exist (created is then set): within Options.MaxRooms and
// MaxRoomsPerUser.
func (m *Module) open(local string, creator jid.JID) (r *room, created bool, err error) {
	for {
		if r := m.lookup(local); r != nil {
			return r, false, nil
		}
		m.mu.Lock()
		if m.rooms[local] != nil {
			m.mu.Unlock()
			continue
		}
		c := creator.Bare().String()
		switch {
		case len(m.rooms) >= m.opts.MaxRooms:
			m.mu.Unlock()
			return nil, false, modules.StanzaError(stanza.Wait, stanza.ResourceConstraint,
				fmt.Sprintf("the service has its maximum of %d rooms", m.opts.MaxRooms))
		case m.created[c] >= m.opts.MaxRoomsPerUser:
			m.mu.Unlock()
			return nil, false, modules.StanzaError(stanza.Cancel, stanza.NotAllowed,
				fmt.Sprintf("you may create at most %d rooms", m.opts.MaxRoomsPerUser))
		}
		j, err := jid.New(local, m.domain.Domainpart(), "")
		if err != nil {
			m.mu.Unlock()
			return nil, false, modules.StanzaError(stanza.Modify, stanza.JIDMalformed, "")
		}
		r := &room{jid: j, occupants: map[string]*occupant{}, historyLoaded: true, archiveOn: m.archives(), State: State{
			JID:          j.String(),
			Created:      m.now(),
			Creator:      c,
			Config:       m.defaultConfig(),
			Affiliations: map[string]Affiliation{c: Owner},
			Locked:       true,
		}}
		// A new room's lock is free: taking it under mu cannot wait.
		r.mu.Lock()
		m.rooms[local] = r
		m.created[c]++
		m.mu.Unlock()
		return r, true, nil
	}
}

// destroy removes r, whose lock the caller holds, from the service.
func (m *Module) destroy(r *room) {
	r.gone = true
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms[r.jid.Localpart()] == r {
		delete(m.rooms, r.jid.Localpart())
		if m.created[r.Creator]--; m.created[r.Creator] <= 0 {
			delete(m.created, r.Creator)
		}
	}
}

// destroyIfIdle destroys r, locked, when nothing keeps it: a temporary
// room with no occupant left.
func (m *Module) destroyIfIdle(r *room) {
	if len(r.occupants) == 0 && !r.Config.Persistent {
		m.destroy(r)
	}
}

// defaultConfig is a new room's configuration: public, open, unmoderated,
// temporary, semi-anonymous, without password, as Prosody makes them.
func (m *Module) defaultConfig() Config {
	return Config{
		Public:        true,
		MaxUsers:      m.opts.MaxOccupants,
		Whois:         WhoisModerators,
		HistoryLength: min(defaultRoomHistory, m.opts.HistoryLength),
		AllowPM:       PMAnyone,
		Archive:       true,
	}
}

// send delivers one stanza the service wrote; a recipient that went away
// meanwhile is no error of the sender's.
func (m *Module) send(ctx context.Context, n wire.Node) {
	if err := m.h.Send(ctx, n.Reader()); err != nil {
		m.log.Debug("muc: send", "err", err)
	}
}

// sendTo delivers n addressed to to.
func (m *Module) sendTo(ctx context.Context, n wire.Node, to jid.JID) {
	n.Attr = append(append([]xml.Attr(nil), n.Attr...), xml.Attr{Name: xml.Name{Local: "to"}, Value: to.String()})
	m.send(ctx, n)
}

// occupantJID is the room JID of nick in r.
func occupantJID(r *room, nick string) string {
	j, err := r.jid.WithResource(nick)
	if err != nil {
		return r.jid.String()
	}
	return j.String()
}
