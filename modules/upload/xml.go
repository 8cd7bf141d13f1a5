package upload

import (
	"encoding/xml"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// Namespaces read or written by the service.
const (
	// NS is XEP-0363's namespace.
	NS           = "urn:xmpp:http:upload:0"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsXData      = "jabber:x:data"
)

// appError is a stanza error with an element of XEP-0363's namespace
// inside it: <file-too-large/> or <retry/>.
type appError struct {
	se  stanza.Error
	app wire.Node
}

func (e appError) Error() string { return e.se.Error() }

// TokenReader renders the <error/> (modules.DomainHandler's contract).
func (e appError) TokenReader() xml.TokenReader {
	return e.se.Wrap(&wire.SliceReader{Toks: e.app.Tokens(nil)})
}
