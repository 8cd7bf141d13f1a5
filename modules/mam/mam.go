// Package mam is XEP-0313 Message Archive Management (version 1.1,
// urn:xmpp:mam:2) for each account, with XEP-0359 stanza ids and XEP-0059
// result set paging.
//
// Archived are the messages of type chat or normal with a <body/> that an
// account sends or receives (not groupchat, headline or error; not those
// with a XEP-0334 <no-store/> or <no-permanent-store/> hint), each under a
// time-ordered id, and a received one is delivered with
// <stanza-id xmlns='urn:xmpp:sid:0' by='account' id='…'/> carrying it (one
// claiming the account's own 'by' from elsewhere is removed first: XEP-0359
// §3.2). Archiving preferences (always, never, roster; JIDs always and
// never) are the account's.
//
// A query (on the account's own JID) filters by with, start, end, and the
// extended before-id, after-id and ids, pages forwards (<after/>) or
// backwards (<before/>, the newest first) by at most limits.mam.max_page,
// and gets the messages as <result/>s, each a XEP-0297 forward with the
// archive's XEP-0203 stamp, oldest first or, for a query with the extended
// <flip-page/>, newest first, then the IQ result with <fin/> (complete when
// the page reaches the end in its direction, first and last ids). The
// extended <metadata/> get answers with the first and last messages of the
// archive, their ids and stamps (metadata.go).
//
// An archive keeps limits.mam.max_messages (the oldest go first) and each
// message limits.mam.retention, removed in the background a batch at a
// time. Deleting the account deletes its archive (storage.Archive). A
// message the archive cannot take (the disk below the floor) is delivered
// all the same, and counted in the log: archiving never loses a message.
package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Namespaces of the archive and what it rides on; NS, NSExtended and
// NSStanzaID for other archives too (modules/muc's rooms).
const (
	NS         = "urn:xmpp:mam:2"
	NSExtended = "urn:xmpp:mam:2#extended"
	NSStanzaID = "urn:xmpp:sid:0"

	nsMAM     = NS
	nsMAMExt  = NSExtended
	nsSID     = NSStanzaID
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
	nsDelay   = "urn:xmpp:delay"
	nsXData   = "jabber:x:data"
	nsHints   = "urn:xmpp:hints"
)

// Module archives messages (modules.InboundMessageHook for what an account
// receives, modules.OutboundMessageHook for what it sends) and answers queries and
// preferences on the account's own JID.
type Module struct {
	// archived counts the messages archived, by direction (in, out);
	// queries the archive queries answered.
	archived, queries metric.Int64Counter
	h                 modules.Host
	store             storage.Store
	log               *slog.Logger
	domain            jid.JID

	// prefsCache holds accounts' preferences for prefsTTL (prefs.go).
	prefsCache *expirable.LRU[string, prefs]
	// skips counts the messages that skipped the archive, for its warning.
	skips skipLog

	stop context.CancelFunc
	done sync.WaitGroup
}

// New returns the message archive module.
func New() modules.Module { return &Module{} }

// Interface guards.
var (
	_ modules.InboundMessageHook  = (*Module)(nil)
	_ modules.OutboundMessageHook = (*Module)(nil)
	_ modules.AccountIQHandler    = (*Module)(nil)
	_ modules.AccountFeatures     = (*Module)(nil)
	_ modules.AccountHook         = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "mam" }

// prefsCacheSize bounds the accounts whose preferences are kept in memory.
const prefsCacheSize = 100000

// AccountCreated implements modules.AccountHook.
func (m *Module) AccountCreated(context.Context, jid.JID) {}

// AccountDeleted implements modules.AccountHook: the account's preferences
// went with its data; a new account of that name starts with the default.
func (m *Module) AccountDeleted(_ context.Context, account jid.JID) {
	m.prefsCache.Remove(account.Localpart())
}

// Start implements modules.Module: the expiry loop starts.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.archived = modules.Counter(h, "adhocd.mam.archived", "Messages archived (XEP-0313), by direction: in (received by the account), out (sent by it).")
	m.queries = modules.Counter(h, "adhocd.mam.queries", "Archive queries answered.")
	m.h, m.store, m.log, m.domain = h, h.Store(), h.Logger(), h.Domain()
	m.prefsCache = expirable.NewLRU[string, prefs](prefsCacheSize, nil, prefsTTL)
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.done.Go(func() { m.expireLoop(ctx) })
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error {
	if m.stop != nil {
		m.stop()
		m.done.Wait()
	}
	return nil
}

// AccountFeatures implements modules.AccountFeatures (XEP-0313 §7).
func (m *Module) AccountFeatures() []string { return []string{nsMAM, nsMAMExt, nsSID} }

var routes = []modules.Route{
	{Type: stanza.SetIQ, Payload: xml.Name{Space: nsMAM, Local: "query"}},
	{Type: stanza.GetIQ, Payload: xml.Name{Space: nsMAM, Local: "query"}},
	{Type: stanza.GetIQ, Payload: xml.Name{Space: nsMAM, Local: "metadata"}},
	{Type: stanza.GetIQ, Payload: xml.Name{Space: nsMAM, Local: "prefs"}},
	{Type: stanza.SetIQ, Payload: xml.Name{Space: nsMAM, Local: "prefs"}},
}

// AccountRoutes implements modules.AccountIQHandler.
func (m *Module) AccountRoutes() []modules.Route { return routes }

// HandleIQ implements modules.AccountIQHandler.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	if iq.Session == nil {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}
	}
	switch {
	case iq.Payload.Name.Local == "query" && iq.Type == stanza.GetIQ:
		return modules.Tokens(QueryForm()), nil
	case iq.Payload.Name.Local == "query":
		return m.query(ctx, iq)
	case iq.Payload.Name.Local == "metadata":
		return m.metadata(ctx, iq.From.Localpart()) // metadata.go
	case iq.Type == stanza.GetIQ:
		p, err := m.prefs(ctx, iq.From.Localpart())
		if err != nil {
			return nil, err
		}
		return modules.Tokens(p.tokens()), nil
	}
	return m.setPrefs(ctx, iq)
}

// eligible reports whether a message is archived (see the package doc).
func eligible(el *wire.Element) bool {
	switch el.Attr("type") {
	case "chat", "normal", "":
	default:
		return false
	}
	if el.Sub(xml.Name{Space: stanza.NSClient, Local: "body"}) == nil {
		return false
	}
	return el.Sub(xml.Name{Space: nsHints, Local: "no-store"}) == nil &&
		el.Sub(xml.Name{Space: nsHints, Local: "no-permanent-store"}) == nil
}

// MessageInbound implements modules.InboundMessageHook: a message for user
// is archived, and delivered with its stanza-id.
func (m *Module) MessageInbound(ctx context.Context, msg modules.Message, user string) *wire.Element {
	own := user + "@" + m.domain.Domainpart()
	clean := withoutStanzaID(msg.El, own)
	if !eligible(msg.El) {
		return clean
	}
	el := msg.El
	if clean != nil {
		el = clean
	}
	id, ok := m.archive(ctx, user, el.Attr("from"), el)
	if !ok {
		return clean
	}
	m.archived.Add(ctx, 1, dirIn)
	sid := xml.StartElement{Name: sidName, Attr: []xml.Attr{
		{Name: xml.Name{Local: "by"}, Value: own}, {Name: xml.Name{Local: "id"}, Value: id}}}
	inner := make([]xml.Token, 0, len(el.Inner)+2)
	inner = append(inner, el.Inner...)
	return &wire.Element{Start: el.Start, Inner: append(inner, sid, sid.End())}
}

// withoutStanzaID returns a copy of el without the stanza-ids that claim to
// be by the account (XEP-0359 §3.2), or nil when it has none.
func withoutStanzaID(el *wire.Element, own string) *wire.Element {
	claims := func(t xml.Token, depth int) bool {
		st, ok := t.(xml.StartElement)
		return ok && depth == 0 && st.Name == sidName && wire.AttrOf(st, "by") == own
	}
	found, depth := false, 0
	for _, t := range el.Inner {
		found = found || claims(t, depth)
		switch t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if !found {
		return nil
	}
	out := make([]xml.Token, 0, len(el.Inner))
	skip := false
	depth = 0
	for _, t := range el.Inner {
		skip = skip || claims(t, depth)
		switch t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
		if !skip {
			out = append(out, t)
		} else if depth == 0 {
			skip = false
		}
	}
	return &wire.Element{Start: el.Start, Inner: out}
}

var sidName = xml.Name{Space: nsSID, Local: "stanza-id"}

// MessageOutbound implements modules.OutboundMessageHook: what a session
// sent goes into its account's archive before it is delivered, so that an
// answer, archived on its way in, comes after it (a message to the account
// itself is archived as received). A message that then bounces stays in
// the sender's archive: it was sent.
func (m *Module) MessageOutbound(ctx context.Context, msg modules.Message) {
	if msg.Sender == nil || !eligible(msg.El) {
		return
	}
	self := msg.Sender.JID()
	if msg.To.Domainpart() == m.domain.Domainpart() && msg.To.Localpart() == self.Localpart() {
		return
	}
	if _, ok := m.archive(ctx, self.Localpart(), msg.To.String(), msg.El); ok {
		m.archived.Add(ctx, 1, dirOut)
	}
}

// The attributes of the archived counter.
var (
	dirIn  = metric.WithAttributes(attribute.String("direction", "in"))
	dirOut = metric.WithAttributes(attribute.String("direction", "out"))
)

// archive keeps el in user's archive, with the other party's JID, if the
// account's preferences want it, and returns its id.
func (m *Module) archive(ctx context.Context, user, with string, el *wire.Element) (string, bool) {
	cfg := m.h.Config()
	lim := cfg.Limits.MAM
	if lim.MaxMessages == 0 {
		return "", false
	}
	full, bare, ok := normalJID(with)
	if !ok {
		return "", false
	}
	if !m.wanted(ctx, user, bare) {
		return "", false
	}
	x := wire.Serialize(append(append([]xml.Token{el.Start}, el.Inner...), el.Start.End()), cfg.Limits.MaxStanzaBytes*2)
	if x == "" {
		return "", false
	}
	id, err := m.store.AppendArchive(ctx, user, storage.ArchivedMessage{With: full, XML: x}, storage.ArchiveQuota{MaxMessages: lim.MaxMessages})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return "", false
	case err != nil:
		// Below the disk floor every message skips the archive: one line a
		// minute at most, with the messages skipped since the last one, so
		// that the log does not grow with the traffic while the disk is full.
		if n := m.skips.note(time.Now()); n > 0 {
			m.log.Warn("messages not archived", "skipped", n, "user", user, "err", err)
		}
		return "", false
	}
	return id, true
}

// skipLogEvery is how often archive warns at most while messages skip the
// archive.
const skipLogEvery = time.Minute

// skipLog counts the messages that skipped the archive since its last
// warning.
type skipLog struct {
	mu      sync.Mutex
	last    time.Time // of the last warning; zero before the first
	skipped int       // since then, this one included
}

// note counts one message skipped at now and returns how many to report
// in a warning now: the count since the last warning when that is
// skipLogEvery ago (or there was none), else 0.
func (l *skipLog) note(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.skipped++
	if !l.last.IsZero() && now.Sub(l.last) < skipLogEvery {
		return 0
	}
	n := l.skipped
	l.last, l.skipped = now, 0
	return n
}

// normalJID returns a JID in its normal form (RFC 7622), whole and bare.
// The JIDs archived are those the router wrote, nearly always in normal
// form already and in ASCII: those are taken as they are, since PRECIS
// would not change them, and the rest are parsed.
func normalJID(s string) (full, bare string, ok bool) {
	at, slash := -1, len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			slash = i
		case c == '@' && at < 0:
			at = i
			continue
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
			continue
		}
		if c == '/' {
			break
		}
		return parseJID(s)
	}
	if slash == 0 || at == 0 || at+1 == slash || slash == len(s)-1 || len(s) > 1023 {
		return parseJID(s)
	}
	for i := slash + 1; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return parseJID(s)
		}
	}
	return s, s[:slash], true
}

func parseJID(s string) (full, bare string, ok bool) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", "", false
	}
	return j.String(), j.Bare().String(), true
}

// ExpiryBatch is the most archived messages removed in one transaction.
const ExpiryBatch = 500

// expireLoop removes messages older than limits.mam.retention until ctx
// ends, every tenth of the retention within bounds.
func (m *Module) expireLoop(ctx context.Context) {
	for {
		ret := m.h.Config().Limits.MAM.Retention.D()
		every := time.Minute
		if ret > 0 {
			every = min(max(ret/10, 50*time.Millisecond), 10*time.Minute)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if ret <= 0 {
			continue
		}
		total := 0
		for ctx.Err() == nil {
			n, err := m.store.ExpireArchive(ctx, time.Now().Add(-ret), ExpiryBatch)
			total += n
			if err != nil || n < ExpiryBatch {
				if err != nil && ctx.Err() == nil {
					m.log.Warn("expire archived messages", "err", err)
				}
				break
			}
		}
		if total > 0 {
			m.log.Info("expired archived messages", "removed", total)
		}
	}
}
