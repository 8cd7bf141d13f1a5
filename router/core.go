package router

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/c2s"
	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Router routes the stanzas of the bound sessions. It implements c2s.Router.
type Router struct {
	domain     jid.JID
	domainName string
	store      storage.Store
	log        *slog.Logger
	metrics    c2s.Observer
	limits     func() config.Limits
	hooks      hooks
	sessions   *sessions
	access     AccessLists
	stanzasIn  atomic.Uint64
	// StanzasOut counts the stanzas written to clients (c2s.Env.StanzasOut).
	StanzasOut atomic.Uint64

	reqs requests // the server's IQ requests waiting for answers (request.go)

	// cluster is the directory and bus of the replicas (cluster.go); nil
	// for one process.
	cluster *cluster.Cluster
	// remote is federation (remote.go); nil when it is off.
	remote Remote

	loginMu sync.Mutex
	logins  map[string]int // logins per account since the start
}

var _ c2s.Router = (*Router)(nil)

// Options are what a Router is made with.
type Options struct {
	Domain   jid.JID
	Store    storage.Store
	Log      *slog.Logger
	Observer c2s.Observer
	// Limits returns the limits in force (a reload may change them).
	Limits func() config.Limits
	// Cluster, when set, routes to the sessions of the other replicas
	// too (cluster.go); the caller hands its envelopes to HandleEnvelope
	// and its reaps to Reaped.
	Cluster *cluster.Cluster
	// Remote, when set, takes the stanzas for other domains (federation,
	// remote.go); the caller hands what its streams read to Receive and
	// what it could not deliver to Bounce.
	Remote Remote
}

// New returns a router with no modules and no sessions.
func New(o Options) *Router {
	r := &Router{
		domain:     o.Domain,
		domainName: o.Domain.String(),
		store:      o.Store,
		log:        o.Log,
		metrics:    o.Observer,
		limits:     o.Limits,
		sessions:   &sessions{byUser: make(map[string]map[string]*session)},
		logins:     make(map[string]int),
		cluster:    o.Cluster,
		remote:     o.Remote,
	}
	r.sessions.maxPerUser = func() int { return r.limits().MaxSessionsPerAccount }
	if r.cluster != nil {
		r.sessions.remoteOf = r.remoteOf
	}
	return r
}

// Access returns the access lists the router applies to addressees.
func (s *Router) Access() *AccessLists { return &s.access }

// session is a bound session as the router sees it: the stream it came on,
// its addresses, its presence state (RFC 6121 §4) and what modules keep for
// it. It implements c2s.Session and modules.Session.
type session struct {
	r        *Router
	conn     *c2s.Conn
	user     string  // localpart
	addr     jid.JID // full JID
	addrName string  // addr.String(), which allocates on every call
	log      *slog.Logger
	// values are what modules keep for the session (modules.Session).
	values sync.Map
	// stream identifies the session in the cluster directory; since is
	// when it was bound.
	stream string
	since  time.Time
	// remote is set for a session bound on another replica (cluster.go):
	// conn is nil, what is sent to it is forwarded there.
	remote *remote
	// peer is set for the transient session of a sender at another
	// domain (remote.go): conn is nil, user empty, what is sent to it goes
	// to Router.remote.
	peer bool

	// Presence state, guarded by pmu.
	pmu        sync.Mutex
	available  bool
	priority   int
	presence   *wire.Element       // the last broadcast presence
	interested bool                // requested the roster (receives pushes)
	directed   map[string]struct{} // full JIDs sent directed presence
}

var (
	_ c2s.Session     = (*session)(nil)
	_ modules.Session = (*session)(nil)
)

// Bind implements c2s.Router: c becomes the session of full.
func (s *Router) Bind(ctx context.Context, c *c2s.Conn, full jid.JID) (c2s.Session, error) {
	sess := &session{r: s, conn: c, user: full.Localpart(), addr: full, addrName: full.String(), log: c.Log(),
		stream: newStreamID(), since: time.Now().UTC()}
	if err := s.sessions.bind(sess, full); err != nil {
		return nil, err
	}
	if s.cluster != nil {
		if err := s.clusterBind(ctx, sess, s.limits().MaxSessionsPerAccount); err != nil {
			s.sessions.unbind(sess)
			return nil, err
		}
	}
	s.onBound(ctx, sess)
	return sess, nil
}

// Route implements c2s.Session.
func (c *session) Route(ctx context.Context, el *wire.Element) error { return c.r.route(ctx, c, el) }

// Unbound implements c2s.Session.
func (c *session) Unbound() { c.r.onUnbound(c) }

// JID implements modules.Session.
func (c *session) JID() jid.JID { return c.addr }

// Deliver implements modules.Session.
func (c *session) Deliver(el *wire.Element) { c.r.deliver(c, el) }

// Reply implements modules.Session.
func (c *session) Reply(el *wire.Element) { c.r.deliverOwn(c, el) }

// Value implements modules.Session.
func (c *session) Value(key any) any {
	v, _ := c.values.Load(key)
	return v
}

// SetValue implements modules.Session.
func (c *session) SetValue(key, value any) { c.values.Store(key, value) }

// end closes the session's stream with a stream error and ends the
// session now, not when its reader notices, so that what runs next
// already sees it gone and its contacts have its unavailable presence.
func (s *Router) end(c *session, se stream.Error) {
	if c.remote != nil {
		s.endRemote(c, se)
		return
	}
	c.conn.Close(se)
	if c.conn.Unbind() {
		s.onUnbound(c)
	}
}

// EndSessions closes the sessions of user whose resource end reports true,
// with a not-authorized stream error saying why, and returns how many it
// closed.
func (s *Router) EndSessions(user string, end func(resource string) bool, reason string) int {
	n := 0
	for _, c := range s.sessions.of(user) {
		if end(c.addr.Resourcepart()) {
			s.end(c, wire.StreamError(stream.NotAuthorized, reason))
			n++
		}
	}
	return n
}

// EndBlocked ends the sessions the access lists no longer allow, except
// those keep reports true for (administrators).
func (s *Router) EndBlocked(keep func(jid.JID) bool) {
	for _, c := range s.sessions.all() {
		if !keep(c.addr) && !s.access.Allowed(c.addr) {
			s.end(c, wire.StreamError(stream.NotAuthorized, "blocked by the server's access lists"))
		}
	}
}

// UserSessions returns the sessions of the local account user bound on
// this replica (what modules keep per session lives here).
func (s *Router) UserSessions(user string) []modules.Session {
	conns := s.sessions.localOf(user)
	slices.SortFunc(conns, func(a, b *session) int { return strings.Compare(a.addr.Resourcepart(), b.addr.Resourcepart()) })
	out := make([]modules.Session, len(conns))
	for i, c := range conns {
		out[i] = c
	}
	return out
}

// Sessions lists the bound sessions, in no particular order (callers that
// show them sort what they show: sorting here cost a tenth of a busy
// server's time for commands that only count).
func (s *Router) Sessions() []modules.SessionInfo {
	var out []modules.SessionInfo
	for _, c := range s.sessions.all() {
		remote, since, last, stanzas := c.conn.Info()
		c.pmu.Lock()
		info := modules.SessionInfo{JID: c.addr, Remote: remote, Since: since, LastActive: last,
			Available: c.available, Priority: c.priority, Stanzas: stanzas}
		c.pmu.Unlock()
		out = append(out, info)
	}
	return append(out, s.remoteSessions()...)
}

// remoteSessions lists the sessions of the other replicas, as Sessions
// does (Remote names the replica, LastActive is what their replicas
// answer, zero for those that did not: lastActive); none without a
// cluster, or when the directory cannot be read (logged).
func (s *Router) remoteSessions() []modules.SessionInfo {
	if s.cluster == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	users, err := s.cluster.Users(ctx)
	var byUser map[string][]cluster.Entry
	if err == nil {
		byUser, err = s.cluster.ResourcesOf(ctx, users)
	}
	if err != nil {
		s.log.Warn("cluster: list the sessions", "err", err)
		return nil
	}
	var remote []cluster.Entry
	var replicas []string
	self := s.cluster.Replica()
	for _, es := range byUser {
		for _, e := range es {
			if e.Replica == self {
				continue
			}
			remote = append(remote, e)
			if !slices.Contains(replicas, e.Replica) {
				replicas = append(replicas, e.Replica)
			}
		}
	}
	if len(remote) == 0 {
		return nil
	}
	last := s.lastActive(replicas)
	out := make([]modules.SessionInfo, 0, len(remote))
	for _, e := range remote {
		if c, ok := s.remoteSession(e); ok {
			out = append(out, modules.SessionInfo{JID: c.addr, Remote: "replica " + e.Replica, Since: e.Since,
				LastActive: last[e.Replica][e.Stream], Available: e.Available, Priority: e.Priority, Replica: e.Replica})
		}
	}
	return out
}

// Count returns the number of bound sessions, of the accounts they belong
// to, and of the stanzas received and sent since the start.
func (s *Router) Count() (sessions, users int, in, out uint64) {
	sessions, users = s.sessions.count()
	if s.cluster != nil {
		// Every replica's: the directory counts them.
		ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
		u, n, err := s.cluster.Online(ctx)
		cancel()
		if err == nil {
			sessions, users = n, u
		} else {
			s.log.Warn("cluster: count the sessions", "err", err)
		}
	}
	return sessions, users, s.stanzasIn.Load(), s.StanzasOut.Load()
}

// Logins returns how many times user logged in since the router started.
func (s *Router) Logins(user string) int {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	return s.logins[user]
}

func (s *Router) countLogin(user string) {
	s.loginMu.Lock()
	s.logins[user]++
	s.loginMu.Unlock()
}

// Undeliverable implements c2s.Router: it answers stanzas queued for dead and never written, as RFC
// 6120 §10.4.3 and RFC 6121 §8.5 say: an IQ request gets
// service-unavailable; a message with a body is kept offline when its
// recipient has no other available resource, and otherwise answered with
// service-unavailable if it was addressed to this resource (one addressed to
// the bare JID reached the others); other messages get service-unavailable
// unless they are errors, headlines or group chat; presence is dropped.
// What the server itself sent (roster pushes, announcements) is dropped.
func (s *Router) Undeliverable(dead *c2s.Conn, els []*wire.Element) {
	gone := func(c *session) bool { return c.conn == dead }
	for _, el := range els {
		s.bounceUndeliveredTo(dead.JID(), gone, el)
	}
}

// bounceUndeliveredTo answers, as Undeliverable does, a stanza that could
// not reach the session of addr: gone tells that session among the account's (nil: none
// of them is, it left already).
func (s *Router) bounceUndeliveredTo(addr jid.JID, gone func(*session) bool, el *wire.Element) {
	from, to := el.Attr("from"), el.Attr("to")
	typ := el.Attr("type")
	if from == "" || from == s.domain.String() || typ == "error" {
		return
	}
	se := stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable,
		Text: map[string]string{"en": "the recipient's connection closed before this could be written to it"}}
	switch el.Start.Name.Local {
	case "iq":
		if typ != string(stanza.GetIQ) && typ != string(stanza.SetIQ) {
			return
		}
	case "message":
		if typ == "headline" || typ == "groupchat" {
			return
		}
		others := s.available(addr.Localpart(), true, gone)
		body := el.Sub(xml.Name{Space: stanza.NSClient, Local: "body"}) != nil
		switch {
		case body && len(others) > 0 && strings.Contains(to, "/") && s.personal(el):
			// For that resource alone: kept for the account's next
			// session rather than shown on the others.
			others = nil
			fallthrough
		case body && len(others) == 0:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := s.keepOffline(ctx, el, addr.Bare(), addr.Localpart())
			cancel()
			if err == nil {
				return
			}
			// Not kept (over limits.max_offline_messages, say): the sender
			// hears why.
			if errors.As(err, &se) {
				break
			}
		case len(others) > 0 && !strings.Contains(to, "/"):
			return // the bare JID's other resources have it
		case body:
			// To the full JID of a resource that is gone, while the account
			// has others: delivered to them, as a message to a full JID
			// with no such resource is (RFC 6121 §8.5.3.2.1), but not to
			// those that already have a copy (a received carbon).
			for _, o := range others {
				if !s.hasCopy(el, addr.Localpart(), o) {
					s.deliver(o, el)
				}
			}
			return
		}
	default:
		return
	}
	s.sendError(from, el, se)
}

// sendError answers el with se, addressed to its sender from: a local
// session, a local account (errorToAccount) or, federating, a remote JID.
// Errors and results are never answered (RFC 6120 §8.3.1); a sender that
// is gone is not searched for.
func (s *Router) sendError(from string, el *wire.Element, se stanza.Error) {
	if t := el.Attr("type"); t == "error" || t == "result" {
		return
	}
	fj, err := jid.Parse(from)
	if err != nil {
		return
	}
	toAccount := s.isLocal(fj) && fj.Localpart() != "" && fj.Resourcepart() == ""
	dst := s.sender(fj)
	if dst == nil && !toAccount {
		return
	}
	reply, err := modules.ErrorReply(el, se.TokenReader())
	if err != nil {
		s.log.Warn("undeliverable stanza: no error reply", "err", err)
		return
	}
	if toAccount {
		s.errorToAccount(fj, el, reply)
		return
	}
	s.deliver(dst, reply)
}

// errorToAccount delivers reply, the error answering el, to the sessions of
// the local account bare: el went out from the bare JID, as subscription
// stanzas and probes do (RFC 6121 §3.1.2, §4.3) and the notifications
// modules send on the account's behalf, so no one resource asked. A
// presence error reaches the resources that sent initial presence, or all
// of them when none did (the request may come from a session that only
// reads its roster); a message error reaches those a message to the bare
// JID would (RFC 6121 §8.5.2.1.1), never offline storage, but a bounced
// headline (a PEP notification) is not answered: the user sent none, and
// Undeliverable answers no headline either. An IQ error has no requester
// to go to and is dropped.
func (s *Router) errorToAccount(bare jid.JID, el *wire.Element, reply *wire.Element) {
	user := bare.Localpart()
	switch el.Start.Name.Local {
	case "presence":
		sessions := s.sessions.of(user)
		all := !slices.ContainsFunc(sessions, (*session).isAvailable)
		for _, dst := range sessions {
			if all || dst.isAvailable() {
				s.deliver(dst, withTo(reply, dst.addr.String()))
			}
		}
	case "message":
		if el.Attr("type") == "headline" {
			s.log.Debug("error to a bare JID for a headline dropped", "to", bare.String())
			return
		}
		for _, dst := range s.available(user, true, nil) {
			s.deliver(dst, reply)
		}
	default:
		s.log.Debug("error to a bare JID dropped: no requester", "to", bare.String(), "kind", el.Start.Name.Local)
	}
}

// priorityOf reads a presence's <priority/>, RFC 6121 §4.7.2.3 (-128..127).
func priorityOf(el *wire.Element) int {
	s, ok := el.Text(xml.Name{Space: stanza.NSClient, Local: "priority"})
	if !ok {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < -128 || p > 127 {
		return 0
	}
	return p
}

// Send delivers a stanza that the server (or a module) originates: a message
// or presence to a local JID, an IQ to a local full JID; federating, any of
// them to a remote JID too.
func (s *Router) Send(ctx context.Context, r xml.TokenReader) error {
	buf := &wire.TokenBuffer{}
	for {
		t, err := r.Token()
		if t != nil {
			_ = buf.EncodeToken(t)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("server: send: %w", err)
		}
	}
	els := buf.Elements()
	if len(els) != 1 {
		return fmt.Errorf("server: send: want one element, got %d", len(els))
	}
	el := els[0]
	if el.Start.Name.Space == "" {
		el.Start.Name.Space = stanza.NSClient
	}
	if el.Attr("from") == "" {
		el.SetAttr("from", s.domain.String())
	}
	to, err := jid.Parse(el.Attr("to"))
	if err != nil {
		return fmt.Errorf("server: send: bad to %q: %w", el.Attr("to"), err)
	}
	switch el.Start.Name.Local {
	case "message":
		return s.deliverMessage(ctx, el, to)
	case "presence":
		if handled, err := s.servicePresence(ctx, el, to); handled {
			return err
		}
		s.deliverPresence(ctx, el, to)
		return nil
	case "iq":
		if s.remoteDomain(to) {
			from, err := jid.Parse(el.Attr("from"))
			if err != nil {
				return fmt.Errorf("server: send: bad from %q: %w", el.Attr("from"), err)
			}
			return s.remote.HandleStanza(ctx, from, el, to)
		}
		if !s.isLocal(to) {
			return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}
		if dst := s.sessions.resource(to.Localpart(), to.Resourcepart()); dst != nil {
			s.deliver(dst, el)
			return nil
		}
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	return fmt.Errorf("server: send: not a stanza: %s", el.Start.Name.Local)
}
