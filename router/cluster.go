package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/wire"
)

// Routing across replicas (Options.Cluster). The replica that holds a
// stream stays the authority on its session; the cluster directory lists
// every bound session of every replica (owner, stream id, priority,
// availability, last presence), and each replica has a channel on which the
// others hand it stanzas for its sessions.
//
// The router sees local and remote sessions through the same registry:
// sessions.of and sessions.resource add, to the sessions bound here, a
// *session for each entry of another replica, whose remote field names its
// replica and stream. Everything that routes (messages to full and bare
// JIDs by priority, presence broadcasts and probes, IQs, roster pushes)
// works on those as on local ones; send forwards a stanza for a remote
// session to its replica (kindDeliver), which delivers it to its stream as
// if routed there. A stanza whose replica no longer listens (PUBLISH
// reached nobody: it died before the reaper removed its entries) is
// handled as one queued for a stream that closed: a message with a body
// goes to the account's other resources or to offline storage, an IQ
// request is answered with service-unavailable, presence is dropped.
//
// What stays per replica: the per-session state modules keep
// (UserSessions lists the local sessions alone), the IQ requests the
// server sends clients (modules.IQRequester asks local sessions only),
// and when each session last sent a stanza, which is not written to the
// directory (that would be a Redis write per stanza): Sessions, for the
// administrators' listings alone, asks each other replica for it with one
// call (kindLastActive).

// The kinds of envelopes replicas send each other.
const (
	// kindDeliver carries a stanza (XML) for the session of To on the
	// receiving replica.
	kindDeliver = "deliver"
	// kindEnd asks the receiving replica to close the stream Stream of To
	// with the stream error of Args condition and text (a resource
	// conflict, an administrator ending the session).
	kindEnd = "end"
	// kindLastActive is a call, with no To: the receiving replica answers
	// with when each of its sessions last sent a stanza (lastActiveReply).
	kindLastActive = "last-active"
)

// remote is where a session bound on another replica lives.
type remote struct {
	replica, stream string
}

// directoryTimeout bounds one exchange with the cluster directory on the
// path of a stanza.
const directoryTimeout = 2 * time.Second

// newStreamID returns an id for a session's stream, unique in the cluster.
func newStreamID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// entry is the directory's entry for the local session c.
func (s *Router) entry(c *session) cluster.Entry {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	e := cluster.Entry{User: c.user, Resource: c.addr.Resourcepart(), Replica: s.cluster.Replica(), Stream: c.stream,
		Priority: c.priority, Available: c.available, Since: c.since}
	if c.presence != nil {
		e.Presence = wire.SerializeElement(c.presence, maxDirectoryPresence)
	}
	return e
}

// maxDirectoryPresence bounds the presence a directory entry keeps; a
// longer one (a presence with a large payload) is left out: the session
// is still available with its priority, its contacts on other replicas
// get its presence when it is broadcast, not when they probe.
const maxDirectoryPresence = 8 << 10

// remoteSession is the session of a directory entry of another replica.
func (s *Router) remoteSession(e cluster.Entry) (*session, bool) {
	addr, err := jid.New(e.User, s.domainName, e.Resource)
	if err != nil {
		return nil, false
	}
	c := &session{r: s, user: e.User, addr: addr, addrName: addr.String(),
		log: s.log.With("jid", addr.String(), "replica", e.Replica), stream: e.Stream,
		remote: &remote{replica: e.Replica, stream: e.Stream}, available: e.Available, priority: e.Priority, since: e.Since,
		// Whether it requested the roster is known to its replica alone:
		// roster pushes go there, and that replica drops those its
		// session did not ask for (HandleEnvelope).
		interested: true}
	if e.Presence != "" {
		if p, ok := wire.ParseElement(e.Presence); ok {
			c.presence = p
		}
	}
	return c, true
}

// publish writes the local session's presence state to the directory.
func (s *Router) publish(c *session) {
	if s.cluster == nil || c.remote != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	if _, err := s.cluster.Update(ctx, s.entry(c)); err != nil {
		c.log.Warn("cluster: update the directory", "err", err)
	}
}

// forward hands a stanza for a remote session to its replica; false when
// that replica did not take it.
func (s *Router) forward(dst *session, el *wire.Element) bool {
	xml := wire.SerializeElement(el, 2*s.limits().MaxStanzaBytes+maxDirectoryPresence)
	if xml == "" {
		dst.log.Warn("cluster: stanza not forwarded: it does not serialise within the bounds", "kind", el.Start.Name.Local)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	ok, err := s.cluster.Send(ctx, dst.remote.replica, cluster.Envelope{Kind: kindDeliver, To: dst.addrName, Stream: dst.remote.stream, XML: xml})
	if err != nil {
		dst.log.Warn("cluster: forward a stanza", "kind", el.Start.Name.Local, "err", err)
		return false
	}
	return ok
}

// endRemote asks the replica of a remote session to close its stream with
// se.
func (s *Router) endRemote(c *session, se stream.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	text := ""
	for _, t := range se.Text {
		text = t.Value
	}
	_, err := s.cluster.Send(ctx, c.remote.replica, cluster.Envelope{Kind: kindEnd, To: c.addrName, Stream: c.remote.stream,
		Args: map[string]string{"condition": se.Err, "text": text}})
	if err != nil {
		c.log.Warn("cluster: end a session on its replica", "err", err)
	}
}

// HandleEnvelope runs what another replica sent this one (cluster.Cluster
// Handle); it answers the calls of kindLastActive, and nothing else.
func (s *Router) HandleEnvelope(ctx context.Context, env cluster.Envelope) *cluster.Envelope {
	if env.Kind == kindLastActive {
		return s.answerLastActive()
	}
	to, err := jid.Parse(env.To)
	if err != nil || to.Resourcepart() == "" {
		s.log.Warn("cluster: envelope for no full JID", "kind", env.Kind, "from", env.From, "to", env.To)
		return nil
	}
	c := s.sessions.local(to.Localpart(), to.Resourcepart())
	switch env.Kind {
	case kindDeliver:
		el, ok := wire.ParseElement(env.XML)
		if !ok {
			s.log.Warn("cluster: unreadable stanza", "from", env.From, "to", env.To)
			return nil
		}
		if c == nil {
			// Gone since the sender looked: as a stanza queued for a
			// stream that closed.
			s.bounceUndeliveredTo(to, nil, el)
			return nil
		}
		if isRosterPush(el) {
			c.pmu.Lock()
			interested := c.interested
			c.pmu.Unlock()
			if !interested {
				return nil // RFC 6121 §2.1.6: to resources that requested the roster
			}
		}
		s.send(c, el, false)
	case kindEnd:
		if c != nil && c.stream == env.Stream {
			s.end(c, wire.StreamError(stream.Error{Err: env.Args["condition"]}, env.Args["text"]))
		}
	default:
		s.log.Warn("cluster: unknown envelope", "kind", env.Kind, "from", env.From)
	}
	return nil
}

// lastActiveTimeout bounds the wait for the other replicas' answers to
// kindLastActive, asked in parallel: the sessions of a replica that has
// not answered by then are listed with a zero LastActive (idle).
const lastActiveTimeout = time.Second

// maxLastActive caps the sessions one answer to kindLastActive carries,
// about 45 bytes each in its JSON (some 2 MiB at most): the most recently
// active are kept, so that those left out (listed with a zero LastActive)
// are the idlest, and a count of active users is exact unless more than
// that many sessions of one replica were active within admin.idle_after.
const maxLastActive = 50_000

// activity is when one local session last sent a stanza.
type activity struct {
	stream string
	last   time.Time
}

// lastActiveReply is the answer to kindLastActive for acts: Args maps the
// stream id of each session to its last activity in Unix milliseconds,
// for the max most recently active sessions.
func lastActiveReply(acts []activity, max int) *cluster.Envelope {
	slices.SortFunc(acts, func(a, b activity) int { return b.last.Compare(a.last) })
	if len(acts) > max {
		acts = acts[:max]
	}
	args := make(map[string]string, len(acts))
	for _, a := range acts {
		args[a.stream] = strconv.FormatInt(a.last.UnixMilli(), 10)
	}
	return &cluster.Envelope{Args: args}
}

// parseLastActive reads an answer of lastActiveReply, by stream id; an
// unreadable value is left out.
func parseLastActive(env cluster.Envelope) map[string]time.Time {
	out := make(map[string]time.Time, len(env.Args))
	for stream, v := range env.Args {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[stream] = time.UnixMilli(ms)
		}
	}
	return out
}

// answerLastActive answers kindLastActive with the local sessions'.
func (s *Router) answerLastActive() *cluster.Envelope {
	cs := s.sessions.all()
	acts := make([]activity, 0, len(cs))
	for _, c := range cs {
		_, _, last, _ := c.conn.Info()
		acts = append(acts, activity{stream: c.stream, last: last})
	}
	return lastActiveReply(acts, maxLastActive)
}

// lastActive asks each of replicas, with one call each, in parallel and
// within lastActiveTimeout, when its sessions last sent a stanza: by
// replica, then by stream id. A replica that does not answer in time, or
// no longer listens, is missing from the result; one warning names them.
func (s *Router) lastActive(replicas []string) map[string]map[string]time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), lastActiveTimeout)
	defer cancel()
	type answer struct {
		replica string
		last    map[string]time.Time
		err     error
	}
	answers := make(chan answer, len(replicas))
	for _, r := range replicas {
		go func() {
			env, err := s.cluster.Call(ctx, r, cluster.Envelope{Kind: kindLastActive})
			a := answer{replica: r, err: err}
			if err == nil {
				a.last = parseLastActive(env)
			}
			answers <- a
		}()
	}
	out := make(map[string]map[string]time.Time, len(replicas))
	var silent []string
	var errs []error
	for range replicas {
		a := <-answers
		if a.err != nil {
			silent = append(silent, a.replica)
			errs = append(errs, a.err)
			continue
		}
		out[a.replica] = a.last
	}
	if len(silent) > 0 {
		slices.Sort(silent)
		s.log.Warn("cluster: no last activity from other replicas: their sessions count as idle",
			"replicas", silent, "err", errors.Join(errs...))
	}
	return out
}

// isRosterPush reports whether el is a roster push of the server (an IQ
// set of the roster without a from).
func isRosterPush(el *wire.Element) bool {
	if el.Start.Name.Local != "iq" || el.Attr("type") != "set" || el.Attr("from") != "" {
		return false
	}
	payload, _ := el.Payload()
	return payload == rosterQuery
}

// Reaped announces the sessions of a replica that died (cluster.Cluster
// OnReap, on the one replica that reaped it) as unavailable to their
// contacts and records their logout.
func (s *Router) Reaped(ctx context.Context, dead string, gone []cluster.Entry) {
	for _, e := range gone {
		c, ok := s.remoteSession(e)
		if !ok {
			continue
		}
		p := unavailableFrom(c.addr)
		if err := s.broadcast(ctx, c, p, true); err != nil {
			s.log.Warn("cluster: announce a dead replica's session unavailable", "jid", c.addrName, "replica", dead, "err", err)
		}
		if err := s.store.RecordLogout(c.user, time.Now().UTC()); err != nil {
			s.log.Warn("record logout", "user", c.user, "err", err)
		}
	}
	s.log.Info("cluster: reaped a replica that died", "replica", dead, "sessions", len(gone))
}

// Fence closes every local stream with system-shutdown (cluster.Cluster
// OnFence): this replica lost the directory for a full lease, its clients
// reconnect to another.
func (s *Router) Fence() {
	// In parallel, as at shutdown: a client that does not read holds its
	// own close for up to write_timeout, and no other's.
	for _, c := range s.sessions.all() {
		go s.end(c, wire.StreamError(stream.SystemShutdown, "this server lost the cluster: reconnect"))
	}
}

// Entries returns the directory entries of the local sessions
// (cluster.Cluster OnRecover), to write back once the directory answers
// again.
func (s *Router) Entries(context.Context) []cluster.Entry {
	var out []cluster.Entry
	for _, c := range s.sessions.all() {
		out = append(out, s.entry(c))
	}
	return out
}

// errDirectory answers a bind the cluster directory could not take.
var errDirectory = stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError,
	Text: map[string]string{"en": "the server could not register the session with its cluster: try again"}}

// clusterBind registers the local session c in the directory: a session of
// the same resource on another replica is ended there (conflict), an
// account at its session cap across the cluster is refused.
func (s *Router) clusterBind(ctx context.Context, c *session, max int) error {
	ctx, cancel := context.WithTimeout(ctx, directoryTimeout)
	defer cancel()
	old, err := s.cluster.Bind(ctx, s.entry(c), max)
	switch {
	case errors.Is(err, cluster.ErrTooManySessions):
		return errTooManySessions
	case err != nil:
		c.log.Warn("cluster: bind", "err", err)
		return errDirectory
	}
	if old != nil && old.Replica != s.cluster.Replica() {
		if oc, ok := s.remoteSession(*old); ok {
			s.endRemote(oc, wire.StreamError(stream.Conflict, "replaced by a new session with the same resource"))
		}
	}
	return nil
}

// clusterUnbind removes the local session c from the directory, unless a
// newer session of its resource replaced it there.
func (s *Router) clusterUnbind(c *session) {
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	if err := s.cluster.Unbind(ctx, c.user, c.addr.Resourcepart(), c.stream); err != nil {
		c.log.Warn("cluster: unbind", "err", err)
	}
}

// remoteOf returns the sessions of user on other replicas; none when the
// directory cannot be read (logged).
func (s *Router) remoteOf(user string) []*session {
	if s.cluster == nil || s.cluster.Fenced() {
		return nil // fenced: this replica has no view of the others
	}
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	es, err := s.cluster.Resources(ctx, user)
	if err != nil {
		s.log.Warn("cluster: read the directory", "user", user, "err", err)
		return nil
	}
	var out []*session
	self := s.cluster.Replica()
	for _, e := range es {
		if e.Replica == self {
			continue
		}
		if c, ok := s.remoteSession(e); ok {
			out = append(out, c)
		}
	}
	return out
}

// Lost closes the local sessions whose entries could not be written back
// after a recovery (cluster.Cluster OnLost): a session of another replica
// took their resource meanwhile, and the newer session wins.
func (s *Router) Lost(_ context.Context, lost []cluster.Entry) {
	for _, e := range lost {
		if c := s.sessions.local(e.User, e.Resource); c != nil && c.stream == e.Stream {
			s.end(c, wire.StreamError(stream.Conflict, "replaced by a new session with the same resource"))
		}
	}
}

// EndRemote ends user's sessions on the replicas of a cluster, but the
// one bound to except, from outside any of them (adhocd user on a host
// where no server runs): each session's replica is asked to close its
// stream with not-authorized and reason. It returns how many it asked.
func EndRemote(ctx context.Context, cl *cluster.Cluster, domain, user, except, reason string) int {
	ctx, cancel := context.WithTimeout(ctx, directoryTimeout)
	defer cancel()
	es, err := cl.Resources(ctx, user)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range es {
		if e.Resource == except {
			continue
		}
		to, err := jid.New(e.User, domain, e.Resource)
		if err != nil {
			continue
		}
		ok, err := cl.Send(ctx, e.Replica, cluster.Envelope{Kind: kindEnd, To: to.String(), Stream: e.Stream,
			Args: map[string]string{"condition": stream.NotAuthorized.Err, "text": reason}})
		if err == nil && ok {
			n++
		}
	}
	return n
}
