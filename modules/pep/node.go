package pep

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strconv"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
)

// The nodes of one account live in its "pep" user data (storage.UserData):
// a node's record under the key node+"\x00", each of its items under
// node+"\x00"+id, so that one prefix holds a node and its items and a
// publish changes both in one transaction. Node names and item ids never
// hold "\x00": XML cannot carry it.
const bucket = "pep"

func recordKey(node string) string      { return node + "\x00" }
func itemKey(node, id string) string    { return node + "\x00" + id }
func nodePrefix(node string) string     { return node + "\x00" }
func isRecordKey(key string) bool       { return len(key) > 0 && key[len(key)-1] == 0 }
func nodeOfRecordKey(key string) string { return key[:len(key)-1] }

// record is a node: its configuration, the sequence of its last publish and
// the id of its newest item.
type record struct {
	Config  nodeConfig `json:"config"`
	Created time.Time  `json:"created"`
	Seq     uint64     `json:"seq"`
	Last    string     `json:"last,omitempty"`
}

// item is one published item.
type item struct {
	ID        string    `json:"id"`
	Seq       uint64    `json:"seq"`
	Published time.Time `json:"published"`
	Publisher string    `json:"publisher,omitempty"`
	// XML is the payload, serialised (wire.Serialize); empty for an item
	// published without one.
	XML string `json:"xml,omitempty"`
}

// nodeConfig is the XEP-0060 node configuration PEP supports.
type nodeConfig struct {
	Access        string `json:"access_model"`
	Persist       bool   `json:"persist_items"`
	MaxItems      int    `json:"max_items"` // maxItemsMax: "max"
	SendLast      string `json:"send_last_published_item"`
	Notify        bool   `json:"deliver_notifications"`
	Payloads      bool   `json:"deliver_payloads"`
	NotifyRetract bool   `json:"notify_retract"`
	NotifyDelete  bool   `json:"notify_delete"`
	Title         string `json:"title,omitempty"`
	Type          string `json:"type,omitempty"`
}

// maxItemsMax stands for pubsub#max_items "max": as many as
// limits.pep.max_items.
const maxItemsMax = -1

// The access models (XEP-0060 §4.5) PEP serves: presence is the default
// (XEP-0163 §4.1); roster and authorize are not offered.
const (
	accessOpen      = "open"
	accessPresence  = "presence"
	accessWhitelist = "whitelist"
)

// defaultConfig is a new node's configuration (XEP-0163 §4: presence access,
// the last item sent on presence; one item kept, as most PEP payloads are a
// state, not a history).
func defaultConfig() nodeConfig {
	return nodeConfig{
		Access: accessPresence, Persist: true, MaxItems: 1, SendLast: "on_sub_and_presence",
		Notify: true, Payloads: true, NotifyRetract: true, NotifyDelete: true,
	}
}

// field is one configuration field: how it is read from and written to a
// form.
type field struct {
	v, label string
	typ      string // XEP-0004 field type
	options  []string
	get      func(*nodeConfig) string
	set      func(*nodeConfig, string) error
}

func boolField(v, label string, p func(*nodeConfig) *bool) field {
	return field{v: v, label: label, typ: "boolean",
		get: func(c *nodeConfig) string { return modules.FormBool(*p(c)) },
		set: func(c *nodeConfig, s string) error {
			b, err := modules.ParseFormBool(s)
			*p(c) = b
			return err
		}}
}

func textField(v, label string, p func(*nodeConfig) *string) field {
	return field{v: v, label: label, typ: "text-single",
		get: func(c *nodeConfig) string { return *p(c) },
		set: func(c *nodeConfig, s string) error { *p(c) = s; return nil }}
}

func listField(v, label string, options []string, p func(*nodeConfig) *string) field {
	return field{v: v, label: label, typ: "list-single", options: options,
		get: func(c *nodeConfig) string { return *p(c) },
		set: func(c *nodeConfig, s string) error {
			for _, o := range options {
				if s == o {
					*p(c) = s
					return nil
				}
			}
			return fmt.Errorf("%s: %q is not one of %v", v, s, options)
		}}
}

// fields lists the configuration PEP supports, in the order of the form.
var fields = []field{
	textField("pubsub#title", "A friendly name for the node", func(c *nodeConfig) *string { return &c.Title }),
	listField("pubsub#access_model", "Who may subscribe and retrieve items",
		[]string{accessOpen, accessPresence, accessWhitelist}, func(c *nodeConfig) *string { return &c.Access }),
	boolField("pubsub#persist_items", "Persist items to storage", func(c *nodeConfig) *bool { return &c.Persist }),
	{v: "pubsub#max_items", label: "Max number of items to persist", typ: "text-single",
		get: func(c *nodeConfig) string {
			if c.MaxItems == maxItemsMax {
				return "max"
			}
			return strconv.Itoa(c.MaxItems)
		},
		set: func(c *nodeConfig, s string) error {
			if s == "max" {
				c.MaxItems = maxItemsMax
				return nil
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return fmt.Errorf("pubsub#max_items: %q is neither a positive number nor max", s)
			}
			c.MaxItems = n
			return nil
		}},
	listField("pubsub#send_last_published_item", "When to send the last published item",
		[]string{"never", "on_sub", "on_sub_and_presence"}, func(c *nodeConfig) *string { return &c.SendLast }),
	boolField("pubsub#deliver_notifications", "Whether to deliver event notifications", func(c *nodeConfig) *bool { return &c.Notify }),
	boolField("pubsub#deliver_payloads", "Whether to deliver payloads with event notifications", func(c *nodeConfig) *bool { return &c.Payloads }),
	boolField("pubsub#notify_retract", "Notify subscribers when items are removed from the node", func(c *nodeConfig) *bool { return &c.NotifyRetract }),
	boolField("pubsub#notify_delete", "Notify subscribers when the node is deleted", func(c *nodeConfig) *bool { return &c.NotifyDelete }),
	textField("pubsub#type", "The type of node data, usually specified by the namespace of the payload", func(c *nodeConfig) *string { return &c.Type }),
}

func fieldOf(v string) *field {
	for i := range fields {
		if fields[i].v == v {
			return &fields[i]
		}
	}
	return nil
}

// formValues reads a submitted data form (XEP-0004): its FORM_TYPE and the
// first value of each other field.
func formValues(x *elem) (formType string, vals map[string]string) {
	vals = map[string]string{}
	for _, f := range x.kids {
		if !f.is(nsXData, "field") {
			continue
		}
		v := ""
		if val := f.child(nsXData, "value"); val != nil {
			v = val.text()
		}
		if f.attr("var") == "FORM_TYPE" {
			formType = v
			continue
		}
		vals[f.attr("var")] = v
	}
	return formType, vals
}

// apply sets the fields of a submitted configuration; fields PEP does not
// know are ignored, as XEP-0060 §8.2.4 lets a service do. A value it cannot
// take is not-acceptable.
func (c *nodeConfig) apply(vals map[string]string) error {
	for v, s := range vals {
		f := fieldOf(v)
		if f == nil {
			continue
		}
		if err := f.set(c, s); err != nil {
			app := ""
			if v == "pubsub#access_model" {
				app = "unsupported-access-model"
			}
			return errorOf(stanza.Modify, stanza.NotAcceptable, app, err.Error())
		}
	}
	return nil
}

// matches reports whether publish-options hold for the node's configuration
// (XEP-0060 §7.1.5): every field PEP knows has the value asked for.
func (c *nodeConfig) matches(vals map[string]string) bool {
	for v, s := range vals {
		f := fieldOf(v)
		if f == nil {
			continue
		}
		want := *c
		if err := f.set(&want, s); err != nil || f.get(&want) != f.get(c) {
			return false
		}
	}
	return true
}

// form renders the configuration as a XEP-0004 form of FORM_TYPE
// pubsub#node_config (XEP-0060 §8.2).
func (c *nodeConfig) form() []xml.Token {
	x := xml.StartElement{Name: xml.Name{Space: nsXData, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "form"}}}
	toks := []xml.Token{x}
	toks = appendField(toks, "FORM_TYPE", "hidden", "", formNodeConfig, nil)
	for _, f := range fields {
		toks = appendField(toks, f.v, f.typ, f.label, f.get(c), f.options)
	}
	return append(toks, x.End())
}

func appendField(toks []xml.Token, v, typ, label, value string, options []string) []xml.Token {
	f := xml.StartElement{Name: xml.Name{Space: nsXData, Local: "field"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "var"}, Value: v}, {Name: xml.Name{Local: "type"}, Value: typ}}}
	if label != "" {
		f.Attr = append(f.Attr, xml.Attr{Name: xml.Name{Local: "label"}, Value: label})
	}
	toks = append(toks, f)
	val := xml.StartElement{Name: xml.Name{Space: nsXData, Local: "value"}}
	toks = append(toks, val, xml.CharData(value), val.End())
	for _, o := range options {
		opt := xml.StartElement{Name: xml.Name{Space: nsXData, Local: "option"}}
		toks = append(toks, opt, val, xml.CharData(o), val.End(), opt.End())
	}
	return append(toks, f.End())
}

// maxItems is the items the node keeps, within the server's bound.
func (c *nodeConfig) maxItems(limit int) int {
	if c.MaxItems == maxItemsMax || c.MaxItems > limit {
		return limit
	}
	return c.MaxItems
}

func decodeRecord(b []byte) (record, error) {
	var r record
	err := json.Unmarshal(b, &r)
	return r, err
}

func decodeItem(b []byte) (item, error) {
	var it item
	err := json.Unmarshal(b, &it)
	return it, err
}
