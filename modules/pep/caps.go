package pep

import (
	"context"
	"encoding/xml"
	"sort"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// XEP-0115 Entity Capabilities (version 1.6): a client's presence carries
// <c node ver hash/>, a hash of its disco#info. PEP notifies a client of a
// node only when its features include node+"+notify" (XEP-0163 §4.2), so
// the server asks the client for the features behind a hash it has not seen
// (a disco#info of node#ver), checks the SHA-1 hash it can check
// (§5.1), and keeps the answer by hash for every client that sends it. An
// answer whose hash does not match serves that session only.

// caps is what the module knows of one session's capabilities.
type caps struct {
	ver      string
	features map[string]bool
}

// capsKey keys a session's *caps (modules.Session.SetValue); absent or nil
// while the session is unavailable.
type capsKey struct{}

func sessionCaps(s modules.Session) *caps {
	c, _ := s.Value(capsKey{}).(*caps)
	return c
}

// wants reports whether the session asked for notifications of node.
func (c *caps) wants(node string) bool { return c != nil && c.features[node+"+notify"] }

// capsCache holds the features behind each verified hash, and the queries
// in flight so that one hash is asked once.
type capsCache struct {
	known    *lru.Cache[string, map[string]bool]
	mu       sync.Mutex
	inFlight map[string][]func(map[string]bool)
	sem      chan struct{}
}

// capsEntries bounds the hashes remembered; maxCapsQueries the disco#info
// queries to clients in flight at once.
const (
	capsEntries    = 4096
	maxCapsQueries = 64
	capsTimeout    = 10 * time.Second
)

func newCapsCache() *capsCache {
	c, _ := lru.New[string, map[string]bool](capsEntries)
	return &capsCache{known: c, inFlight: map[string][]func(map[string]bool){}, sem: make(chan struct{}, maxCapsQueries)}
}

// capsOf reads the <c/> of a presence: node, ver and hash.
func capsOf(el *wire.Element) (node, ver, hash string, ok bool) {
	for _, e := range elements(el.Inner) {
		if e.is(nsCaps, "c") {
			return e.attr("node"), e.attr("ver"), e.attr("hash"), e.attr("ver") != ""
		}
	}
	return "", "", "", false
}

// resolve calls done with the features behind the session's caps, at once
// when the hash is known, or once the client has answered (never when it
// does not). It never blocks.
func (m *Module) resolve(s modules.Session, node, ver, hash string, done func(map[string]bool)) {
	if f, ok := m.caps.known.Get(ver); ok {
		done(f)
		return
	}
	if m.req == nil {
		return
	}
	m.caps.mu.Lock()
	waiting, asked := m.caps.inFlight[ver]
	m.caps.inFlight[ver] = append(waiting, done)
	m.caps.mu.Unlock()
	if asked {
		return
	}
	select {
	case m.caps.sem <- struct{}{}:
	default:
		// Too many queries at once: this hash is asked again at the next
		// presence that carries it.
		m.finish(ver, nil)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.caps.sem }()
		ctx, cancel := context.WithTimeout(m.ctx, capsTimeout)
		defer cancel()
		f, verified := m.query(ctx, s.JID(), node, ver, hash)
		if verified {
			m.caps.known.Add(ver, f)
		}
		m.finish(ver, f)
	}()
}

// finish hands the features found (nil: none found) to those waiting.
func (m *Module) finish(ver string, f map[string]bool) {
	m.caps.mu.Lock()
	waiting := m.caps.inFlight[ver]
	delete(m.caps.inFlight, ver)
	m.caps.mu.Unlock()
	if f == nil {
		return
	}
	for _, done := range waiting {
		done(f)
	}
}

// query asks the client for disco#info of node#ver and returns its features
// and whether they match the hash.
func (m *Module) query(ctx context.Context, to jid.JID, node, ver, hash string) (map[string]bool, bool) {
	q := xml.StartElement{Name: xml.Name{Space: nsDiscoInfo, Local: "query"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node + "#" + ver}}}
	resp, err := m.req.Request(ctx, to, stanza.GetIQ, &wire.SliceReader{Toks: []xml.Token{q, q.End()}})
	if err != nil || resp.Attr("type") != "result" {
		m.log.Debug("caps query", "to", to, "ver", ver, "err", err)
		return nil, false
	}
	var ids []string
	var feats []string
	var forms []string
	f := map[string]bool{}
	for _, e := range elements(resp.Inner) {
		if !e.is(nsDiscoInfo, "query") {
			continue
		}
		for _, k := range e.kids {
			switch {
			case k.is(nsDiscoInfo, "identity"):
				ids = append(ids, k.attr("category")+"/"+k.attr("type")+"/"+langOf(k.start)+"/"+k.attr("name"))
			case k.is(nsDiscoInfo, "feature"):
				feats = append(feats, k.attr("var"))
				f[k.attr("var")] = true
			case k.is(nsXData, "x"):
				forms = append(forms, formString(k))
			}
		}
	}
	return f, hash == "sha-1" && modules.CapsHash(ids, feats, forms) == ver
}

// formString is one extended form's part of the verification string
// (XEP-0115 §5.4 step 3.7): FORM_TYPE, then each field by var with its
// sorted values.
func formString(x *elem) string {
	formType := ""
	type fv struct {
		v    string
		vals []string
	}
	var fs []fv
	for _, f := range x.kids {
		if !f.is(nsXData, "field") {
			continue
		}
		var vals []string
		for _, v := range f.kids {
			if v.is(nsXData, "value") {
				vals = append(vals, v.text())
			}
		}
		if f.attr("var") == "FORM_TYPE" {
			if len(vals) > 0 {
				formType = vals[0]
			}
			continue
		}
		sort.Strings(vals)
		fs = append(fs, fv{f.attr("var"), vals})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].v < fs[j].v })
	var b strings.Builder
	b.WriteString(formType + "<")
	for _, f := range fs {
		b.WriteString(f.v + "<")
		for _, v := range f.vals {
			b.WriteString(v + "<")
		}
	}
	return b.String()
}

func langOf(st xml.StartElement) string {
	for _, a := range st.Attr {
		if a.Name.Local == "lang" && a.Name.Space == wire.NSXML {
			return a.Value
		}
	}
	return ""
}
