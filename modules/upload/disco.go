package upload

import (
	"strconv"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// info is disco#info of the service: identity store/file, the features,
// and the XEP-0128 form with max-file-size, which spares a client a
// request that could only fail.
func (m *Module) info(discoNode string) ([]wire.Node, error) {
	if discoNode != "" {
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
	}
	q := wire.Elem(nsDiscoInfo, "query").Add(wire.Elem(nsDiscoInfo, "identity", "category", "store", "type", "file", "name", m.opts.Name))
	for _, f := range []string{nsDiscoInfo, nsPing, NS} {
		q = q.Add(wire.Elem(nsDiscoInfo, "feature", "var", f))
	}
	form := wire.Elem(nsXData, "x", "type", "result").Add(
		wire.Elem(nsXData, "field", "var", "FORM_TYPE", "type", "hidden").Add(wire.TextElem(nsXData, "value", NS)),
		wire.Elem(nsXData, "field", "var", "max-file-size").Add(wire.TextElem(nsXData, "value", strconv.FormatInt(m.opts.MaxFileBytes, 10))),
	)
	return []wire.Node{q.Add(form)}, nil
}

// items is disco#items of the service: none.
func (m *Module) items(discoNode string) ([]wire.Node, error) {
	if discoNode != "" {
		return nil, modules.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
	}
	return []wire.Node{wire.Elem(nsDiscoItems, "query")}, nil
}
