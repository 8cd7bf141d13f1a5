package upload

import (
	"context"
	"strconv"

	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
)

// DiscoInfo implements modules.NodeHandler: the service serves no node of
// the server JID.
func (m *Module) DiscoInfo(context.Context, jid.JID, string) (modules.DiscoInfo, error) {
	return modules.DiscoInfo{}, modules.ErrNoNode
}

// DiscoItems implements modules.NodeHandler: the server's items list the
// service (XEP-0363 §2: a server SHOULD list the upload services it knows).
func (m *Module) DiscoItems(_ context.Context, _ jid.JID, node string) ([]items.Item, error) {
	if node != "" {
		return nil, modules.ErrNoNode
	}
	return []items.Item{{JID: m.domain, Name: m.opts.Name}}, nil
}

// info is disco#info of the service: identity store/file, the features,
// and the XEP-0128 form with max-file-size, which spares a client a
// request that could only fail.
func (m *Module) info(discoNode string) ([]node, error) {
	if discoNode != "" {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "")
	}
	q := elem(nsDiscoInfo, "query").add(elem(nsDiscoInfo, "identity", "category", "store", "type", "file", "name", m.opts.Name))
	for _, f := range []string{nsDiscoInfo, nsPing, NS} {
		q = q.add(elem(nsDiscoInfo, "feature", "var", f))
	}
	form := elem(nsXData, "x", "type", "result").add(
		elem(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").add(textElem(nsXData, "value", NS)),
		elem(nsXData, "field", "var", "max-file-size").add(textElem(nsXData, "value", strconv.FormatInt(m.opts.MaxFileBytes, 10))),
	)
	return []node{q.add(form)}, nil
}

// items is disco#items of the service: none.
func (m *Module) items(discoNode string) ([]node, error) {
	if discoNode != "" {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "")
	}
	return []node{elem(nsDiscoItems, "query")}, nil
}
