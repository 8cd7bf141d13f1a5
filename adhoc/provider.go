package adhoc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/mux"
	"mellium.im/xmpp/stanza"
)

// Event describes one request handled by the provider, for metrics and
// traces. It carries no JID, session id or form value.
type Event struct {
	// Node is the command's node, empty when the request named no
	// registered command (so that metrics never take a label from a
	// requester's whim).
	Node string
	// Action is the action as resolved (execute is turned into next or
	// complete once a session exists).
	Action Action
	// Stage is the stage the request was about.
	Stage int
	// Outcome is executing, completed or canceled, or the error condition
	// (Condition) the request was answered with.
	Outcome string
	// Start is when the request arrived; Duration how long it took.
	Start    time.Time
	Duration time.Duration
}

// Provider serves ad-hoc commands: register commands, then route IQs with a
// <command/> payload to HandleIQ (it implements mux.IQHandler).
type Provider struct {
	mu       sync.RWMutex
	commands map[string]map[string]*Command // responder JID → node → command

	store   Store
	isLocal func(jid.JID) bool // nil: every requester is local
	observe func(context.Context, Event)
	log     *slog.Logger
	locks   [256]sync.Mutex
	now     func() time.Time
	secret  []byte
	macs    sync.Pool // of *macState: HMAC-SHA-256 under secret
}

var _ mux.IQHandler = (*Provider)(nil)

// Option configures a Provider.
type Option func(*Provider)

// WithStore keeps sessions in st (default: NewMemoryStore(10000, 10m, 20)).
func WithStore(st Store) Option { return func(p *Provider) { p.store = st } }

// WithObserver calls f after every request (execute, next, prev, complete,
// cancel or error), named after slixmpp's command_* events.
func WithObserver(f func(context.Context, Event)) Option { return func(p *Provider) { p.observe = f } }

// WithSecret sets the key that authenticates session ids (default: random
// per provider). A provider whose sessions outlive the process (a
// persistent Store) should keep its secret too, so that old ids are still
// recognised as its own.
func WithSecret(key []byte) Option { return func(p *Provider) { p.secret = key } }

// WithLocal tells the provider which requesters are local: isLocal reports
// whether a requester's JID is of the server's own domain or of a domain
// it serves (its services'). A requester that is not local sees and runs
// only the commands that set Command.Remote. Without this option every
// requester counts as local, as for a client or bot that embeds a
// provider, which its own server already filters.
func WithLocal(isLocal func(requester jid.JID) bool) Option {
	return func(p *Provider) { p.isLocal = isLocal }
}

// WithLogger sets the logger for failures of command functions.
func WithLogger(l *slog.Logger) Option { return func(p *Provider) { p.log = l } }

// NewProvider returns a provider with no commands.
func NewProvider(opts ...Option) *Provider {
	p := &Provider{commands: map[string]map[string]*Command{}, log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(p)
	}
	if p.store == nil {
		p.store = NewMemoryStore(10000, 10*time.Minute, 20)
	}
	if p.secret == nil {
		p.secret = make([]byte, 32)
		_, _ = rand.Read(p.secret)
	}
	p.macs.New = func() any { return &macState{h: hmac.New(sha256.New, p.secret)} }
	return p
}

// Store returns the provider's session store.
func (p *Provider) Store() Store { return p.store }

// AddCommand makes c available at responder, replacing a command with the
// same node there.
func (p *Provider) AddCommand(responder jid.JID, c Command) error {
	if c.Node == "" {
		return errors.New("adhoc: add command: empty node")
	}
	if c.Complete == nil {
		return fmt.Errorf("adhoc: add command %q: no Complete function", c.Node)
	}
	for i, st := range c.Stages {
		if st.Form == nil {
			return fmt.Errorf("adhoc: add command %q: stage %d has no Form", c.Node, i)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := responder.String()
	if p.commands[key] == nil {
		p.commands[key] = map[string]*Command{}
	}
	p.commands[key][c.Node] = &c
	return nil
}

// RemoveCommand withdraws the command node at responder.
func (p *Provider) RemoveCommand(responder jid.JID, node string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.commands[responder.String()], node)
}

func (p *Provider) command(responder jid.JID, node string) *Command {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.commands[responder.String()][node]
}

// Items lists the commands at responder that requester may run, for
// disco#items on the node http://jabber.org/protocol/commands: for a
// requester that is not local (WithLocal), only those that set Remote.
func (p *Provider) Items(ctx context.Context, responder, requester jid.JID, lang string) []items.Item {
	p.mu.RLock()
	cmds := make([]*Command, 0, len(p.commands[responder.String()]))
	for _, c := range p.commands[responder.String()] {
		cmds = append(cmds, c)
	}
	p.mu.RUnlock()
	slices.SortFunc(cmds, func(a, b *Command) int {
		if a.Node < b.Node {
			return -1
		}
		return 1
	})
	var out []items.Item
	for _, c := range cmds {
		if c.allowed(ctx, p.isLocal, requester) {
			out = append(out, items.Item{JID: responder, Node: c.Node, Name: c.name(lang)})
		}
	}
	return out
}

// Identities and features of XEP-0050 §2.3 and §2.4.
var (
	CommandListIdentity = info.Identity{Category: "automation", Type: "command-list"}
	commandFeatures     = []string{NS, form.NS}
)

// Info answers disco#info for a command node: identity automation/command-node
// and the features commands and jabber:x:data. ok is false when node is not a
// command at responder; forbidden is returned for a requester that may not
// run it (a requester that is not local, for a command without Remote).
func (p *Provider) Info(ctx context.Context, responder, requester jid.JID, node, lang string) (ids []info.Identity, features []string, ok bool, err error) {
	if node == NS {
		return []info.Identity{CommandListIdentity}, nil, true, nil
	}
	c := p.command(responder, node)
	if c == nil {
		return nil, nil, false, nil
	}
	if !c.allowed(ctx, p.isLocal, requester) {
		return nil, nil, true, errForbidden()
	}
	return []info.Identity{{Category: "automation", Type: "command-node", Name: c.name(lang)}}, commandFeatures, true, nil
}

// HandleIQ answers an IQ whose payload is <command/>. It implements
// mux.IQHandler, so a Provider can be registered on a mellium mux (in a
// client or bot) as well as in adhocd.
func (p *Provider) HandleIQ(iq stanza.IQ, t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if iq.Type != stanza.SetIQ {
		return p.reply(t, iq, nil, cmdErr(stanza.Modify, stanza.BadRequest, "", "commands are run with IQ set"))
	}
	payload, err := collect(t)
	if err != nil {
		return err
	}
	resp, err := p.Handle(context.Background(), iq, *start, payload)
	return p.reply(t, iq, resp, err)
}

// reply writes the result, or the error with the commands-namespace child.
func (p *Provider) reply(t xmlstream.TokenWriter, iq stanza.IQ, resp xml.TokenReader, err error) error {
	if err != nil {
		var e Error
		var se stanza.Error
		switch {
		case errors.As(err, &e):
		case errors.As(err, &se):
			e = Error{Stanza: se}
		default:
			e = cmdErr(stanza.Cancel, stanza.InternalServerError, "", "")
		}
		errIQ := stanza.IQ{ID: iq.ID, Type: stanza.ErrorIQ, To: iq.From, From: iq.To}
		_, werr := xmlstream.Copy(t, errIQ.Wrap(e.TokenReader()))
		return werr
	}
	_, werr := xmlstream.Copy(t, iq.Result(resp))
	return werr
}

// Handle runs one request: iq is the request IQ (From is the requester, To
// the responder), start the <command/> start element and payload its
// content. It returns the <command/> response or an error to send (an Error,
// or another error for internal-server-error).
func (p *Provider) Handle(ctx context.Context, iq stanza.IQ, start xml.StartElement, payload []xml.Token) (resp xml.TokenReader, err error) {
	var begin time.Time
	if p.observe != nil {
		// The clock is read for the observer only.
		begin = p.now()
	}
	ev := Event{Start: begin}
	defer func() {
		if p.observe == nil {
			return
		}
		ev.Duration = p.now().Sub(begin)
		if err != nil {
			ev.Outcome = Condition(err)
		}
		p.observe(ctx, ev)
	}()

	node, sid, actionAttr, lang := attr(start, "node"), attr(start, "sessionid"), attr(start, "action"), iq.Lang
	if l := langAttr(start); l != "" {
		lang = l
	}
	ev.Action = Action(actionAttr)
	action := Action(actionAttr)
	switch action {
	case "":
		action = Execute
	case Execute, Next, Prev, Complete, Cancel:
	default:
		return nil, errMalformedAction(actionAttr)
	}
	ev.Action = action
	if node == "" {
		return nil, cmdErr(stanza.Modify, stanza.BadRequest, "", "the command has no node")
	}
	c := p.command(iq.To, node)
	if c == nil {
		return nil, errNotFound(node)
	}
	ev.Node = node
	if sid == "" {
		return p.start(ctx, c, iq, lang, action, payload, &ev)
	}

	mu := &p.locks[lockIndex(sid)]
	mu.Lock()
	defer mu.Unlock()
	s, err := p.store.Get(ctx, sid)
	switch {
	case errors.Is(err, ErrSessionEnded):
		return nil, errSessionExpired()
	case errors.Is(err, ErrNoSession) && p.issued(sid):
		// Ours, but no longer held (evicted, or ended long ago).
		return nil, errSessionExpired()
	case errors.Is(err, ErrNoSession):
		return nil, errBadSessionID("unknown session id")
	case err != nil:
		return nil, fmt.Errorf("adhoc: load session: %w", err)
	}
	if s.Requester != iq.From.String() || s.Node != node || s.Responder != iq.To.String() {
		// Another requester's or another command's session: refused, and
		// nothing about it changes.
		return nil, errBadSessionID("the session belongs to another requester or command")
	}
	ev.Stage = s.Stage
	if !c.allowed(ctx, p.isLocal, iq.From) {
		_ = p.store.End(ctx, sid)
		return nil, errForbidden()
	}
	if s.Stage >= len(c.Stages) {
		// The command changed under a stored session (fewer stages now).
		_ = p.store.End(ctx, sid)
		return nil, errSessionExpired()
	}
	last := s.Stage == len(c.Stages)-1
	switch {
	case action == Execute:
		// XEP-0050 1.3.0: execute means what <actions execute=…> offered.
		action = defaultAction(last)
	case action == Next && last:
		// Leniency, as Prosody's mod_adhoc: on the last stage nothing but
		// complete can follow, and clients (poezio 0.14) send next to
		// submit a single-stage form. It is taken as complete, with the
		// same validation; prev on the first stage stays bad-action.
		action = Complete
	}
	ev.Action = action
	req := p.request(c, s, iq, action)
	switch action {
	case Cancel:
		if err := p.store.End(ctx, sid); err != nil {
			return nil, fmt.Errorf("adhoc: end session: %w", err)
		}
		ev.Outcome = string(Canceled)
		return p.response(c, s, Canceled, nil, 0, nil), nil
	case Prev:
		if s.Stage == 0 {
			return nil, errBadAction(action)
		}
		s.Stage--
		return p.show(ctx, c, s, iq, &ev)
	case Next:
		if err := p.accept(ctx, c, s, req, payload); err != nil {
			return nil, err
		}
		s.Stage++
		return p.show(ctx, c, s, iq, &ev)
	default: // Complete
		if !last && !c.Stages[s.Stage].AllowComplete {
			return nil, errBadAction(action)
		}
		if err := p.accept(ctx, c, s, req, payload); err != nil {
			return nil, err
		}
		if err := p.store.End(ctx, sid); err != nil {
			return nil, fmt.Errorf("adhoc: end session: %w", err)
		}
		return p.complete(ctx, c, s, iq, &ev)
	}
}

// start begins a session with execute.
func (p *Provider) start(ctx context.Context, c *Command, iq stanza.IQ, lang string, action Action, _ []xml.Token, ev *Event) (xml.TokenReader, error) {
	if !c.allowed(ctx, p.isLocal, iq.From) {
		return nil, errForbidden()
	}
	if action != Execute {
		// next, prev, complete and cancel continue a session: there is none.
		return nil, errBadSessionID(fmt.Sprintf("%s needs the sessionid of a running session", action))
	}
	served, ok := c.language(lang)
	if !ok {
		return nil, errBadLocale(lang)
	}
	s := &Session{ID: p.newSessionID(), Node: c.Node, Lang: served}
	if len(c.Stages) == 0 {
		// A one-stage command completes now. Its id is never stored: being
		// one the provider issued (its MAC), it answers session-expired if
		// it comes back, as an ended session's does, without a tombstone.
		// Nothing reads the addresses and times a stored session keeps,
		// so they are not made.
		return p.complete(ctx, c, s, iq, ev)
	}
	now := p.now()
	s.Responder, s.Requester, s.Owner = iq.To.String(), iq.From.String(), iq.From.Bare().String()
	s.Created, s.Updated = now, now
	return p.show(ctx, c, s, iq, ev)
}

// show renders the session's current stage and stores the session.
func (p *Provider) show(ctx context.Context, c *Command, s *Session, iq stanza.IQ, ev *Event) (xml.TokenReader, error) {
	req := p.request(c, s, iq, ev.Action)
	def, err := c.Stages[s.Stage].Form(ctx, req)
	if err != nil {
		return nil, p.failed(c, err)
	}
	var earlier Values
	if s.Stage < len(s.Values) {
		earlier = s.Values[s.Stage]
	}
	s.Updated = p.now()
	if err := p.store.Put(ctx, s); err != nil {
		switch {
		case errors.Is(err, ErrTooManySessions):
			return nil, errTooManySessions()
		case errors.Is(err, ErrSessionChanged):
			return nil, errSessionChanged()
		case errors.Is(err, ErrSessionEnded):
			return nil, errSessionExpired()
		}
		return nil, fmt.Errorf("adhoc: store session: %w", err)
	}
	ev.Outcome = string(Executing)
	return p.response(c, s, Executing, nil, 8+8*def.Len(), func(toks []xml.Token) []xml.Token {
		return appendForm(toks, def, form.TypeForm, earlier)
	}), nil
}

// accept validates the submission of the current stage and records it.
func (p *Provider) accept(ctx context.Context, c *Command, s *Session, req *Request, payload []xml.Token) error {
	st := c.Stages[s.Stage]
	def, err := st.Form(ctx, req)
	if err != nil {
		return p.failed(c, err)
	}
	got, err := submitted(payload)
	if err != nil {
		return errBadPayload(err)
	}
	vals, err := validate(def, got)
	if err != nil {
		return errBadPayload(err)
	}
	for len(s.Values) <= s.Stage {
		s.Values = append(s.Values, nil)
	}
	s.Values[s.Stage] = vals
	if st.Check != nil {
		req.Values = s.merged(s.Stage + 1)
		if err := st.Check(ctx, req); err != nil {
			return p.failed(c, err)
		}
	}
	return nil
}

// complete runs the command's Complete and renders the final response.
func (p *Provider) complete(ctx context.Context, c *Command, s *Session, iq stanza.IQ, ev *Event) (xml.TokenReader, error) {
	req := p.requestWith(c, s, iq, Complete, s.merged(len(s.Values)))
	res, err := c.Complete(ctx, req)
	if err != nil {
		return nil, p.failed(c, err)
	}
	if res == nil {
		res = &Result{}
	}
	ev.Outcome = string(Completed)
	room := len(res.Payload)
	if res.Form != nil {
		room += 8 + 8*res.Form.Len()
	}
	if res.Table != nil {
		room += 32
	}
	return p.response(c, s, Completed, res.Notes, room, func(toks []xml.Token) []xml.Token {
		if res.Form != nil {
			toks = appendForm(toks, res.Form, form.TypeResult, nil)
		}
		if res.Table != nil {
			toks = res.Table.appendTo(toks)
		}
		return append(toks, res.Payload...)
	}), nil
}

// failed maps an error from a command's function to what is sent.
func (p *Provider) failed(c *Command, err error) error {
	var pe *PayloadError
	var e Error
	var se stanza.Error
	switch {
	case errors.As(err, &pe):
		return errBadPayload(pe)
	case errors.As(err, &e):
		return e
	case errors.As(err, &se):
		return Error{Stanza: se}
	}
	p.log.Error("command failed", "node", c.Node, "err", err)
	if errors.Is(err, syscall.ENOSPC) {
		return cmdErr(stanza.Wait, stanza.ResourceConstraint, "", "the server's storage is full")
	}
	return cmdErr(stanza.Wait, stanza.InternalServerError, "", "")
}

func (p *Provider) request(c *Command, s *Session, iq stanza.IQ, a Action) *Request {
	return p.requestWith(c, s, iq, a, s.merged(s.Stage))
}

// requestWith is request with the values given.
func (p *Provider) requestWith(c *Command, s *Session, iq stanza.IQ, a Action, vals Values) *Request {
	return &Request{
		Requester: iq.From, Responder: iq.To, Node: c.Node, SessionID: s.ID, Lang: s.Lang,
		Action: a, Stage: s.Stage, Values: vals, IQ: iq,
	}
}

func defaultAction(last bool) Action {
	if last {
		return Complete
	}
	return Next
}

// response renders <command/> with, in schema order, <actions/>, notes and
// the payload; room is about how many tokens payload adds.
func (p *Provider) response(c *Command, s *Session, status Status, notes []Note, room int, payload func([]xml.Token) []xml.Token) xml.TokenReader {
	attrs := make([]xml.Attr, 3, 4)
	attrs[0] = xml.Attr{Name: xml.Name{Local: "node"}, Value: c.Node}
	attrs[1] = xml.Attr{Name: xml.Name{Local: "sessionid"}, Value: s.ID}
	attrs[2] = xml.Attr{Name: xml.Name{Local: "status"}, Value: string(status)}
	if s.Lang != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: s.Lang})
	}
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: "command"}, Attr: attrs}
	// Sized for what follows: the start and end, <actions/> with its three
	// children at most, three tokens a note, and the payload's room.
	n := 2 + 3*len(notes) + room
	if status == Executing {
		n += 8
	}
	toks := make([]xml.Token, 1, n)
	toks[0] = start
	if status == Executing {
		last := s.Stage == len(c.Stages)-1
		acts := xml.StartElement{Name: xml.Name{Space: NS, Local: "actions"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "execute"}, Value: string(defaultAction(last))}}}
		toks = append(toks, acts)
		if s.Stage > 0 {
			toks = append(toks, actionPrev.start, actionPrev.end)
		}
		if !last {
			toks = append(toks, actionNext.start, actionNext.end)
		}
		if last || c.Stages[s.Stage].AllowComplete {
			toks = append(toks, actionComplete.start, actionComplete.end)
		}
		toks = append(toks, endActions)
	}
	for _, n := range notes {
		typ := n.Type
		if typ == "" {
			typ = NoteInfo
		}
		el := xml.StartElement{Name: xml.Name{Space: NS, Local: "note"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: string(typ)}}}
		toks = append(toks, el, xml.CharData(n.Text), endNote)
	}
	if payload != nil {
		toks = payload(toks)
	}
	return &tokens{toks: append(toks, endCommand)}
}

// Tokens of every response, boxed once (see plain).
var (
	actionPrev     = plainElement(NS, string(Prev))
	actionNext     = plainElement(NS, string(Next))
	actionComplete = plainElement(NS, string(Complete))

	endActions xml.Token = xml.EndElement{Name: xml.Name{Space: NS, Local: "actions"}}
	endNote    xml.Token = xml.EndElement{Name: xml.Name{Space: NS, Local: "note"}}
	endCommand xml.Token = xml.EndElement{Name: xml.Name{Space: NS, Local: "command"}}
)

const nsXML = "http://www.w3.org/XML/1998/namespace"

// submitted finds the data form in a command's payload.
func submitted(payload []xml.Token) (Values, error) {
	for i, t := range payload {
		st, ok := t.(xml.StartElement)
		if !ok || st.Name != (xml.Name{Space: form.NS, Local: "x"}) {
			continue
		}
		var sub submission
		d := xml.NewTokenDecoder(&tokens{toks: payload[i:]})
		if err := d.Decode(&sub); err != nil {
			return nil, fmt.Errorf("malformed data form: %v", err)
		}
		if sub.Type != "" && sub.Type != "submit" {
			return nil, fmt.Errorf("a data form of type %q cannot be submitted", sub.Type)
		}
		return sub.values(), nil
	}
	return Values{}, nil
}

func attr(st xml.StartElement, local string) string {
	for _, a := range st.Attr {
		if a.Name.Local == local && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

func langAttr(st xml.StartElement) string {
	for _, a := range st.Attr {
		if a.Name.Local == "lang" && a.Name.Space == nsXML {
			return a.Value
		}
	}
	return ""
}

func lockIndex(sid string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(sid))
	return int(h.Sum32() % 256)
}

// collect reads the rest of a command element (up to its end) as tokens.
func collect(r xml.TokenReader) ([]xml.Token, error) {
	var out []xml.Token
	depth := 0
	for {
		t, err := r.Token()
		if t != nil {
			switch t.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				if depth == 0 {
					return out, nil
				}
				depth--
			}
			out = append(out, xml.CopyToken(t))
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("adhoc: read command: %w", err)
		}
	}
}

// newSessionID returns 96 random bits followed by 64 bits of their HMAC under
// the provider's secret, base32 without padding. The MAC lets the provider
// tell an id it issued and no longer holds (session-expired) from one the
// requester invented (bad-sessionid) without remembering every ended id.
func (p *Provider) newSessionID() string {
	m := p.macs.Get().(*macState)
	b := m.id[:12]
	_, _ = rand.Read(b)
	copy(m.id[12:], m.sum(b))
	var out [32]byte // 20 bytes in base32
	sidEncoding.Encode(out[:], m.id[:])
	p.macs.Put(m)
	return string(out[:sidEncoding.EncodedLen(len(m.id))])
}

// issued reports whether sid was made by newSessionID with this secret.
func (p *Provider) issued(sid string) bool {
	b, err := sidEncoding.DecodeString(sid)
	if err != nil || len(b) != 20 {
		return false
	}
	m := p.macs.Get().(*macState)
	ok := hmac.Equal(b[12:], m.sum(b[:12]))
	p.macs.Put(m)
	return ok
}

// macState is a pooled HMAC (a new one costs two SHA-256 states and the
// key schedule, for every command) with room for an id and a sum, so that
// making an id allocates nothing but its string.
type macState struct {
	h   hash.Hash // HMAC-SHA-256 under the provider's secret
	id  [20]byte
	buf [sha256.Size]byte
}

// sum is the first 64 bits of b's HMAC, valid until m is used again.
func (m *macState) sum(b []byte) []byte {
	m.h.Reset()
	m.h.Write(b)
	return m.h.Sum(m.buf[:0])[:8]
}

var sidEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
