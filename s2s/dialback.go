package s2s

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// NSDialback is the namespace of Server Dialback elements (XEP-0220).
const NSDialback = "jabber:server:dialback"

// NSDialbackFeature is the namespace of the <dialback/> stream feature that
// announces dialback with error handling (XEP-0220 §2.4.2).
const NSDialbackFeature = "urn:xmpp:features:dialback"

// DialbackPrefix is the prefix that dialback elements are written with and
// that every s2s stream header binds to NSDialback. ejabberd matches the
// literal names db:result and db:verify, so no other prefix is used
// (docs/design-federation.md §8).
const DialbackPrefix = "db"

// DialbackDecl is the namespace declaration that every s2s stream header
// carries, in both directions (XEP-0220 §2.4.1): it is how dialback
// support is announced, and it binds DialbackPrefix for the elements that
// follow.
const DialbackDecl = ` xmlns:db='jabber:server:dialback'`

// Keyer makes and checks dialback keys with the algorithm of XEP-0185:
//
//	key = hex(HMAC-SHA256(hex(SHA256(secret)), receiving + " " + originating + " " + stream ID))
//
// where the HMAC key is the hexadecimal text of the secret's SHA-256 (64
// ASCII bytes), not the 32 bytes of the digest. Every replica that may be
// asked to verify a key (the Authoritative Server of XEP-0220) needs the
// same secret. A Keyer is safe for concurrent use.
type Keyer struct {
	key []byte // hex(SHA256(secret)), the HMAC key
}

// NewKeyer returns a Keyer for secret. XEP-0185 wants the secret set in the
// configuration or generated at random when the server starts
// (RandomSecret); an empty one is refused.
func NewKeyer(secret []byte) (*Keyer, error) {
	if len(secret) == 0 {
		return nil, errors.New("s2s: the dialback secret is empty")
	}
	sum := sha256.Sum256(secret)
	return &Keyer{key: []byte(hex.EncodeToString(sum[:]))}, nil
}

// RandomSecret returns a new random secret of 128 bits, as text, for a
// server whose configuration names none.
func RandomSecret() []byte { return []byte(rand.Text()) }

// mac computes the key's bytes.
func (k *Keyer) mac(receiving, originating, streamID string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(receiving))
	m.Write([]byte{' '})
	m.Write([]byte(originating))
	m.Write([]byte{' '})
	m.Write([]byte(streamID))
	return m.Sum(nil)
}

// Key returns the dialback key, in lower-case hexadecimal, that the
// Originating Server sends to receiving for the stream that receiving
// opened with streamID. The domains are used as given: callers pass the
// stream's domains in the canonical form that both ends see.
func (k *Keyer) Key(receiving, originating, streamID string) string {
	return hex.EncodeToString(k.mac(receiving, originating, streamID))
}

// Verify reports whether key is the dialback key for the three inputs, as
// the Authoritative Server checks a <db:verify/> request: receiving is the
// request's 'from', originating its 'to' and streamID its 'id'. The key is
// decoded from hexadecimal (in either case) and the two MACs are compared
// in constant time, so the time taken tells nothing about how much of the
// key was right.
func (k *Keyer) Verify(receiving, originating, streamID, key string) bool {
	got, err := hex.DecodeString(key)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, k.mac(receiving, originating, streamID))
}

// DialbackKind is the element of a dialback exchange.
type DialbackKind uint8

const (
	// DialbackResult is <db:result/>: the Initiating Server's key for a
	// domain pair, or the Receiving Server's verdict on it.
	DialbackResult DialbackKind = iota + 1
	// DialbackVerify is <db:verify/>: the Receiving Server asking the
	// Authoritative Server about a key received on stream 'id', or its
	// answer.
	DialbackVerify
)

// String returns the element's local name.
func (k DialbackKind) String() string {
	switch k {
	case DialbackResult:
		return "result"
	case DialbackVerify:
		return "verify"
	}
	return "DialbackKind(" + strconv.Itoa(int(k)) + ")"
}

// DialbackType is the 'type' of a dialback element: none on a request,
// valid, invalid or error on an answer.
type DialbackType string

const (
	// DialbackRequest (no type) is a request that carries a key.
	DialbackRequest DialbackType = ""
	// DialbackValid says the key is valid for the domain pair.
	DialbackValid DialbackType = "valid"
	// DialbackInvalid says it is not.
	DialbackInvalid DialbackType = "invalid"
	// DialbackError says the request could not be handled (XEP-0220 §2.5);
	// the element carries a stanza error.
	DialbackError DialbackType = "error"
)

// Dialback is a <db:result/> or <db:verify/> element (XEP-0220 §2).
type Dialback struct {
	Kind DialbackKind
	// From and To are the sending and receiving domains of the element;
	// both are required.
	From, To string
	// ID is the stream ID that a <db:verify/> is about; required there,
	// and absent from <db:result/>.
	ID string
	// Type is DialbackRequest on a request, and the verdict on an answer.
	Type DialbackType
	// Key is the dialback key that a request carries. Answers carry none,
	// except Prosody's, which repeat it; a reader should ignore it there.
	Key string
	// Error is the condition of a type='error' answer. When read, it is nil
	// if the peer sent type='error' without an <error/> child.
	Error *stanza.Error
}

// Marshal writes d as XML with the literal db: prefix, ready to be sent on
// a stream whose header carries DialbackDecl. With declareNS it declares
// the prefix on the element itself (`<db:result xmlns:db='…'>`), for a
// peer or a context without that header; on a stream it is not needed.
// It fails on an element that would break XEP-0220: a missing From, To or
// (for <db:verify/>) ID, an unknown type, or an Error on an element that is
// not of type error or none on one that is.
func (d Dialback) Marshal(declareNS bool) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("s2s: dialback %s: %w", d.Kind, err)
	}
	switch {
	case d.Type == DialbackError && (d.Error == nil || d.Error.Condition == "" || d.Error.Type == ""):
		return nil, fmt.Errorf("s2s: dialback %s: type='error' needs an Error with a type and a condition", d.Kind)
	case d.Type != DialbackError && d.Error != nil:
		return nil, fmt.Errorf("s2s: dialback %s: an Error goes only with type='error'", d.Kind)
	}
	var b bytes.Buffer
	b.WriteString("<" + DialbackPrefix + ":" + d.Kind.String())
	if declareNS {
		b.WriteString(DialbackDecl)
	}
	dbAttr(&b, "from", d.From)
	dbAttr(&b, "to", d.To)
	if d.ID != "" {
		dbAttr(&b, "id", d.ID)
	}
	if d.Type != DialbackRequest {
		dbAttr(&b, "type", string(d.Type))
	}
	if d.Key == "" && d.Error == nil {
		b.WriteString("/>")
		return b.Bytes(), nil
	}
	b.WriteByte('>')
	dbText(&b, d.Key)
	if d.Error != nil {
		dbWriteError(&b, *d.Error)
	}
	b.WriteString("</" + DialbackPrefix + ":" + d.Kind.String() + ">")
	return b.Bytes(), nil
}

// check applies the rules that both a written and a read element follow.
func (d Dialback) check() error {
	switch {
	case d.Kind != DialbackResult && d.Kind != DialbackVerify:
		return errors.New("not db:result or db:verify")
	case d.From == "" || d.To == "":
		return errors.New("'from' and 'to' are required")
	case d.Kind == DialbackVerify && d.ID == "":
		return errors.New("'id' is required")
	case d.Kind == DialbackResult && d.ID != "":
		return errors.New("'id' belongs on db:verify only")
	}
	switch d.Type {
	case DialbackRequest, DialbackValid, DialbackInvalid, DialbackError:
		return nil
	}
	return fmt.Errorf("unknown type %q", d.Type)
}

// dbAttr writes ` name='value'`.
func dbAttr(b *bytes.Buffer, name, value string) {
	b.WriteString(" " + name + "='")
	dbText(b, value)
	b.WriteByte('\'')
}

// dbText writes character data escaped for both text and attributes in
// single quotes (encoding/xml escapes quotes and white space other than
// the space, and replaces what XML cannot carry).
func dbText(b *bytes.Buffer, s string) {
	// A bytes.Buffer never fails to write.
	_ = xml.EscapeText(b, []byte(s))
}

// dbWriteError writes a stanza error the way XEP-0220 §2.5 shows it: an
// <error/> in the stream's default namespace (jabber:server), the
// condition and optional text in the stanza-error namespace.
func dbWriteError(b *bytes.Buffer, e stanza.Error) {
	b.WriteString("<error")
	dbAttr(b, "type", string(e.Type))
	if by := e.By.String(); by != "" {
		dbAttr(b, "by", by)
	}
	b.WriteString("><" + string(e.Condition) + " xmlns='" + stanza.NSError + "'/>")
	langs := make([]string, 0, len(e.Text))
	for lang := range e.Text {
		langs = append(langs, lang)
	}
	slices.Sort(langs)
	for _, lang := range langs {
		if e.Text[lang] == "" {
			continue
		}
		b.WriteString("<text xmlns='" + stanza.NSError + "'")
		if lang != "" {
			dbAttr(b, "xml:lang", lang)
		}
		b.WriteByte('>')
		dbText(b, e.Text[lang])
		b.WriteString("</text>")
	}
	b.WriteString("</error>")
}

// DialbackKindOf returns the kind of dialback element that name names, or 0.
// It accepts the namespace resolved from the stream header's declaration,
// whatever prefix the peer bound it to, and the prefix db left undeclared
// (encoding/xml then reports the prefix as the space), which older peers
// send.
func DialbackKindOf(name xml.Name) DialbackKind {
	if name.Space != NSDialback && name.Space != DialbackPrefix {
		return 0
	}
	switch name.Local {
	case "result":
		return DialbackResult
	case "verify":
		return DialbackVerify
	}
	return 0
}

// ParseDialback reads a dialback element received on a stream. The key is
// the element's character data with surrounding white space removed (the
// examples of XEP-0185 and XEP-0220 put the key on a line of its own). It
// fails on an element that DialbackKindOf does not accept, or that lacks
// 'from', 'to' or (db:verify) 'id', has an 'id' on db:result, or has an
// unknown type. Whether the element is expected on its stream, or
// unsolicited (XEP-0220 §3.1), is for the caller to decide.
func ParseDialback(el *wire.Element) (Dialback, error) {
	d := Dialback{
		Kind: DialbackKindOf(el.Start.Name),
		From: el.Attr("from"),
		To:   el.Attr("to"),
		ID:   el.Attr("id"),
		Type: DialbackType(el.Attr("type")),
	}
	if d.Kind == 0 {
		return Dialback{}, fmt.Errorf("s2s: %s is not a dialback element", dbElementName(el.Start.Name))
	}
	if d.Kind == DialbackResult {
		// XEP-0220 puts no 'id' on db:result, but Prosody 0.12 copies the
		// one of the db:verify answer it got onto its verdict: ignored,
		// not refused.
		d.ID = ""
	}
	if err := d.check(); err != nil {
		return Dialback{}, fmt.Errorf("s2s: dialback %s: %w", d.Kind, err)
	}
	var key strings.Builder
	depth := 0
	for _, t := range el.Inner {
		switch t := t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				key.Write(t)
			}
		}
	}
	d.Key = strings.Trim(key.String(), " \t\r\n")
	if d.Type == DialbackError {
		d.Error = dbReadError(el)
	}
	return d, nil
}

// dbReadError reads the <error/> child of a dialback element, or returns nil.
func dbReadError(el *wire.Element) *stanza.Error {
	var errEl *wire.Element
	for _, c := range el.Children(xml.Name{}) {
		if c.Start.Name.Local == "error" && (c.Start.Name.Space == stanza.NSServer || c.Start.Name.Space == stanza.NSClient) {
			errEl = c
			break
		}
	}
	if errEl == nil {
		return nil
	}
	e := &stanza.Error{Type: stanza.ErrorType(errEl.Attr("type"))}
	if by, err := jid.Parse(errEl.Attr("by")); err == nil {
		e.By = by
	}
	for _, c := range errEl.Children(xml.Name{}) {
		if c.Start.Name.Space != stanza.NSError {
			continue
		}
		if c.Start.Name.Local != "text" {
			if e.Condition == "" {
				e.Condition = stanza.Condition(c.Start.Name.Local)
			}
			continue
		}
		lang := ""
		for _, a := range c.Start.Attr {
			if a.Name.Local == "lang" && a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
				lang = a.Value
			}
		}
		if e.Text == nil {
			e.Text = make(map[string]string)
		}
		e.Text[lang] = wire.TextOf(append(append([]xml.Token{c.Start}, c.Inner...), c.Start.End()))
	}
	return e
}

// dbElementName renders an element name for an error message.
func dbElementName(n xml.Name) string {
	if n.Space == "" {
		return "<" + n.Local + "/>"
	}
	return "<" + n.Local + " xmlns='" + n.Space + "'/>"
}
