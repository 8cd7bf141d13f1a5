package blocking

import (
	"context"
	"encoding/xml"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// InterceptIn implements modules.StanzaInterceptor: it applies both rules of
// §3.3 to a stanza a local session sends (see the package comment). It also
// loads the sender's list, so that InterceptOut finds the list of every
// account whose sessions have sent anything.
func (m *Module) InterceptIn(ctx context.Context, from modules.Session, el *wire.Element, to jid.JID) error {
	sender := from.JID()
	user := sender.Localpart()
	own, err := m.list(ctx, user)
	if err != nil {
		return err
	}
	domain := to.Domainpart()
	if domain == "" {
		return nil // no to: the account's own server
	}
	local := domain == m.domain
	contact := to.Localpart()
	if local && (contact == user || (contact == "" && to.Resourcepart() == "")) {
		return nil // the account itself, or the server's JID
	}
	if !own.empty() && own.blocks(to.String()) {
		m.refused.Add(ctx, 1, dirTo)
		return errBlocked{}
	}
	if !local || contact == "" {
		return nil
	}
	theirs, err := m.list(ctx, contact)
	if err != nil {
		return err
	}
	if theirs.empty() || !theirs.blocks(sender.String()) {
		return nil
	}
	m.refused.Add(ctx, 1, dirFrom)
	return refusal(el)
}

// The attributes of the refused counter.
var (
	dirTo   = metric.WithAttributes(attribute.String("direction", "to"))
	dirFrom = metric.WithAttributes(attribute.String("direction", "from"))
	dirOut  = metric.WithAttributes(attribute.String("direction", "out"))
)

// errUnavailable answers what a blocked JID sends the user: the user
// appears offline (§3.3).
var errUnavailable = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}

// refusal is how a stanza from a blocked JID to the user is answered: a
// message of type chat or normal and an IQ get or set with
// service-unavailable, the rest not at all.
func refusal(el *wire.Element) error {
	typ := el.Attr("type")
	switch el.Start.Name.Local {
	case "message":
		if typ == "" || typ == "normal" || typ == "chat" {
			return errUnavailable
		}
	case "iq":
		if typ == string(stanza.GetIQ) || typ == string(stanza.SetIQ) {
			return errUnavailable
		}
	}
	return modules.ErrDrop
}

// errBlocked answers a stanza the user sends to a JID they block:
// not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/> (§3.3).
type errBlocked struct{}

func (errBlocked) Error() string { return "blocking: the recipient is blocked" }

// TokenReader renders the <error/>, the application condition after the
// defined one (RFC 6120 §8.3.2).
func (errBlocked) TokenReader() xml.TokenReader {
	cond := xml.StartElement{Name: xml.Name{Space: NSErrors, Local: "blocked"}}
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAcceptable}.
		Wrap(&reply{toks: []xml.Token{cond, cond.End()}})
}

// InterceptOut implements modules.StanzaInterceptor: it drops a stanza about
// to be queued for dst when dst's account blocks its sender, or a local
// sender blocks dst. It reads only the cache: a list it does not find
// (an account none of whose sessions has sent anything yet) lets the stanza
// pass and is loaded in the background for the next one. Errors pass (see
// the package comment).
func (m *Module) InterceptOut(dst modules.Session, el *wire.Element) bool {
	from := el.Attr("from")
	if from == "" || from == m.domain || el.Attr("type") == "error" {
		return true
	}
	dj := dst.JID()
	user := dj.Localpart()
	fromUser, fromLocal := localpart(from, m.domain)
	if fromLocal && fromUser == user {
		return true
	}
	if l, ok := m.cache.get(user); !ok {
		m.warm(user)
	} else if l.blocks(from) {
		m.refused.Add(context.Background(), 1, dirOut)
		return false
	}
	if fromLocal && fromUser != "" {
		if l, ok := m.cache.get(fromUser); !ok {
			m.warm(fromUser)
		} else if !l.empty() && l.blocks(dj.String()) {
			m.refused.Add(context.Background(), 1, dirOut)
			return false
		}
	}
	return true
}

// localpart splits a JID in its normal form: its localpart, and whether its
// domain is domain.
func localpart(addr, domain string) (string, bool) {
	bare := addr
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		bare = addr[:i]
	}
	user := ""
	if i := strings.IndexByte(bare, '@'); i >= 0 {
		user, bare = bare[:i], bare[i+1:]
	}
	return user, bare == domain
}

// maxWarming bounds the lists loaded in the background at once; past it a
// miss waits for the next stanza.
const maxWarming = 64

// warm loads user's list in the background.
func (m *Module) warm(user string) {
	m.warmMu.Lock()
	if m.warming[user] || len(m.warming) >= maxWarming || m.ctx.Err() != nil {
		m.warmMu.Unlock()
		return
	}
	m.warming[user] = true
	m.wg.Add(1)
	m.warmMu.Unlock()
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		if _, err := m.list(ctx, user); err != nil && m.ctx.Err() == nil {
			m.log.Warn("load blocklist", "user", user, "err", err)
		}
		cancel()
		m.warmMu.Lock()
		delete(m.warming, user)
		m.warmMu.Unlock()
	}()
}
