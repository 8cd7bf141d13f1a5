package adhoc

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/commands"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Requester lists and runs commands on other entities over a mellium
// session: slixmpp's get_commands, start_command, continue_command,
// complete_command and cancel_command. Listing uses mellium.im/xmpp/commands;
// running parses the whole reply itself because mellium's Execute keeps
// neither notes, actions nor the XEP-0050 specific error condition.
type Requester struct {
	s *xmpp.Session
}

// NewRequester returns a requester on session s. The session must be served
// (s.Serve running) for replies to arrive.
func NewRequester(s *xmpp.Session) *Requester { return &Requester{s: s} }

// Commands lists the commands at to that this requester may run.
func (r *Requester) Commands(ctx context.Context, to jid.JID) ([]commands.Command, error) {
	iter := commands.Fetch(ctx, to, r.s)
	defer iter.Close()
	var out []commands.Command
	for iter.Next() {
		out = append(out, iter.Command())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("adhoc: list commands of %s: %w", to, err)
	}
	return out, nil
}

// Response is a command's reply as a requester sees it.
type Response struct {
	From      jid.JID
	Node      string
	SessionID string
	Status    Status
	Lang      string
	// Default is what execute means at this stage; Actions what is allowed.
	Default Action
	Actions []Action
	Notes   []Note
	// Forms are the data forms of the payload (a stage's form, or results).
	Forms []Form
	// Payloads are the other children of <command/> (anything but
	// <actions/>, <note/> and data forms), such as a jabber:iq:roster
	// query, kept as XML.
	Payloads []Payload
}

// Allowed reports whether a is offered at this stage (cancel always is
// while the command executes).
func (r *Response) Allowed(a Action) bool {
	if r.Status != Executing {
		return false
	}
	if a == Cancel || a == Execute {
		return true
	}
	for _, x := range r.Actions {
		if x == a {
			return true
		}
	}
	return false
}

// Form is a data form as received: fields with their types, labels and
// options, and for multi-item results the reported columns and items.
type Form struct {
	Type         string   `xml:"type,attr" json:"type"`
	Title        string   `xml:"title" json:"title,omitempty"`
	Instructions []string `xml:"instructions" json:"instructions,omitempty"`
	Fields       []Field  `xml:"field" json:"fields,omitempty"`
	Reported     []Field  `xml:"reported>field" json:"reported,omitempty"`
	Items        []struct {
		Fields []Field `xml:"field" json:"fields"`
	} `xml:"item" json:"items,omitempty"`
	// Payloads are the form's children that are not form elements, such as
	// the jabber:iq:roster query XEP-0133 get-user-roster embeds.
	Payloads []Payload `xml:",any" json:"payloads,omitempty"`
}

// Field is one field of a received form.
type Field struct {
	Var      string    `xml:"var,attr" json:"var,omitempty"`
	Type     string    `xml:"type,attr" json:"type,omitempty"`
	Label    string    `xml:"label,attr" json:"label,omitempty"`
	Desc     string    `xml:"desc" json:"desc,omitempty"`
	Required *struct{} `xml:"required" json:"-"`
	Values   []string  `xml:"value" json:"values,omitempty"`
	Options  []struct {
		Label string `xml:"label,attr" json:"label,omitempty"`
		Value string `xml:"value" json:"value"`
	} `xml:"option" json:"options,omitempty"`
}

// IsRequired reports whether the field must be filled in.
func (f Field) IsRequired() bool { return f.Required != nil }

// Value returns the form's first value for var, or "".
func (f *Form) Value(name string) string {
	for _, fl := range f.Fields {
		if fl.Var == name && len(fl.Values) > 0 {
			return fl.Values[0]
		}
	}
	return ""
}

// Start executes node at to (start_command).
func (r *Requester) Start(ctx context.Context, to jid.JID, node string) (*Response, error) {
	return r.send(ctx, to, node, "", Execute, nil)
}

// Continue sends action (next, prev or execute) with the values of the
// current stage (continue_command).
func (r *Requester) Continue(ctx context.Context, resp *Response, a Action, v Values) (*Response, error) {
	return r.send(ctx, resp.From, resp.Node, resp.SessionID, a, v)
}

// Complete completes the command with the values of the current stage
// (complete_command).
func (r *Requester) Complete(ctx context.Context, resp *Response, v Values) (*Response, error) {
	return r.send(ctx, resp.From, resp.Node, resp.SessionID, Complete, v)
}

// Cancel cancels the session (cancel_command).
func (r *Requester) Cancel(ctx context.Context, resp *Response) (*Response, error) {
	return r.send(ctx, resp.From, resp.Node, resp.SessionID, Cancel, nil)
}

// StageFunc decides what to do at a stage: the action and the values to
// submit with it.
type StageFunc func(ctx context.Context, resp *Response) (Action, Values, error)

// Run drives a command from execute to its end, calling step at every stage
// the command shows, and returns the final response.
func (r *Requester) Run(ctx context.Context, to jid.JID, node string, step StageFunc) (*Response, error) {
	resp, err := r.Start(ctx, to, node)
	for err == nil && resp.Status == Executing {
		var a Action
		var v Values
		if a, v, err = step(ctx, resp); err != nil {
			if _, cerr := r.Cancel(ctx, resp); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return nil, err
		}
		resp, err = r.send(ctx, resp.From, resp.Node, resp.SessionID, a, v)
	}
	return resp, err
}

func (r *Requester) send(ctx context.Context, to jid.JID, node, sid string, a Action, v Values) (*Response, error) {
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: "command"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "node"}, Value: node},
		{Name: xml.Name{Local: "action"}, Value: string(a)},
	}}
	if sid != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "sessionid"}, Value: sid})
	}
	var payload xml.TokenReader
	if v != nil {
		payload = v.Submission()
	}
	iq := stanza.IQ{Type: stanza.SetIQ, To: to}
	rc, err := r.s.SendIQ(ctx, iq.Wrap(xmlstream.Wrap(payload, start)))
	if err != nil {
		return nil, fmt.Errorf("adhoc: %s %s: %w", a, node, err)
	}
	defer rc.Close()
	return parseReply(rc, to)
}

// commandXML is a <command/> element as received.
type commandXML struct {
	Node      string `xml:"node,attr"`
	SessionID string `xml:"sessionid,attr"`
	Status    string `xml:"status,attr"`
	Lang      string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Actions   *struct {
		Execute  string    `xml:"execute,attr"`
		Prev     *struct{} `xml:"prev"`
		Next     *struct{} `xml:"next"`
		Complete *struct{} `xml:"complete"`
	} `xml:"actions"`
	Notes []struct {
		Type string `xml:"type,attr"`
		Text string `xml:",chardata"`
	} `xml:"note"`
	Forms    []Form    `xml:"jabber:x:data x"`
	Payloads []Payload `xml:",any"`
}

// reply is an IQ carrying a <command/> or an <error/>.
type reply struct {
	Type    string      `xml:"type,attr"`
	Command *commandXML `xml:"http://jabber.org/protocol/commands command"`
	Error   *struct {
		Type  string `xml:"type,attr"`
		Inner []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"error"`
}

func parseReply(r xml.TokenReader, from jid.JID) (*Response, error) {
	var rep reply
	if err := xml.NewTokenDecoder(r).Decode(&rep); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("adhoc: malformed reply: %w", err)
	}
	if rep.Type == "error" {
		e := Error{Stanza: stanza.Error{Condition: stanza.UndefinedCondition}}
		if rep.Error != nil {
			e.Stanza.Type = stanza.ErrorType(rep.Error.Type)
			for _, in := range rep.Error.Inner {
				switch {
				case in.XMLName.Space == NS:
					e.Specific = in.XMLName.Local
				case in.XMLName.Local == "text":
					e.Stanza.Text = map[string]string{"en": in.Text}
				default:
					e.Stanza.Condition = stanza.Condition(in.XMLName.Local)
				}
			}
		}
		return nil, e
	}
	if rep.Command == nil {
		return nil, errors.New("adhoc: reply without <command/>")
	}
	resp := rep.Command.response()
	resp.From = from
	return resp, nil
}

// ParseCommand reads a <command/> element (a provider's response without
// its IQ) into a Response.
func ParseCommand(r xml.TokenReader) (*Response, error) {
	var c commandXML
	if err := xml.NewTokenDecoder(r).Decode(&c); err != nil {
		return nil, fmt.Errorf("adhoc: malformed command: %w", err)
	}
	return c.response(), nil
}

func (c *commandXML) response() *Response {
	resp := &Response{Node: c.Node, SessionID: c.SessionID, Status: Status(c.Status), Lang: c.Lang, Forms: c.Forms, Payloads: c.Payloads}
	if a := c.Actions; a != nil {
		resp.Default = Action(a.Execute)
		for _, x := range []struct {
			on bool
			a  Action
		}{{a.Prev != nil, Prev}, {a.Next != nil, Next}, {a.Complete != nil, Complete}} {
			if x.on {
				resp.Actions = append(resp.Actions, x.a)
			}
		}
	}
	for _, n := range c.Notes {
		t := NoteType(n.Type)
		if t == "" {
			t = NoteInfo
		}
		resp.Notes = append(resp.Notes, Note{Type: t, Text: n.Text})
	}
	return resp
}

// Submission renders the values as a data form of type submit.
func (v Values) Submission() xml.TokenReader {
	x := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "submit"}}}
	toks := []xml.Token{x}
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		f := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "field"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: k}}}
		toks = append(toks, f)
		for _, val := range v[k] {
			e := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "value"}}
			toks = append(toks, e, xml.CharData(val), e.End())
		}
		toks = append(toks, f.End())
	}
	return &tokens{toks: append(toks, x.End())}
}

// Payload is an element of a reply that the requester does not interpret
// itself, kept whole: its name and its XML, written again from the parsed
// tokens (each namespace declared where it changes, prefixes of the original
// not kept).
type Payload struct {
	// NS and Local name the element.
	NS    string `json:"ns"`
	Local string `json:"name"`
	// XML is the element with its attributes and content.
	XML string `json:"xml"`
}

// Is reports whether the payload is the element local in namespace ns.
func (p Payload) Is(ns, local string) bool { return p.NS == ns && p.Local == local }

// Decode unmarshals the payload's XML into v, as encoding/xml does.
func (p Payload) Decode(v any) error {
	if err := xml.Unmarshal([]byte(p.XML), v); err != nil {
		return fmt.Errorf("adhoc: decode %s payload: %w", p.Local, err)
	}
	return nil
}

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\n", "&#xA;", "\r", "&#xD;", "\t", "&#x9;")
)

// UnmarshalXML keeps the element as XML.
func (p *Payload) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var b strings.Builder
	spaces := []string{""} // the default namespace in scope at each depth
	writeStart := func(s xml.StartElement) {
		b.WriteString("<" + s.Name.Local)
		if s.Name.Space != spaces[len(spaces)-1] {
			b.WriteString(` xmlns="` + attrEscaper.Replace(s.Name.Space) + `"`)
		}
		for i, a := range s.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				continue
			}
			b.WriteString(" ")
			switch a.Name.Space {
			case "":
			case "http://www.w3.org/XML/1998/namespace", "xml":
				b.WriteString("xml:")
			default:
				// A foreign attribute keeps its namespace through a prefix
				// declared on the element (one per attribute).
				prefix := "a" + strconv.Itoa(i)
				b.WriteString(prefix + ":" + a.Name.Local + `="` + attrEscaper.Replace(a.Value) + `" xmlns:` + prefix + `="` + attrEscaper.Replace(a.Name.Space) + `"`)
				continue
			}
			b.WriteString(a.Name.Local + `="` + attrEscaper.Replace(a.Value) + `"`)
		}
		b.WriteString(">")
		spaces = append(spaces, s.Name.Space)
	}
	p.NS, p.Local = start.Name.Space, start.Name.Local
	writeStart(start)
	for len(spaces) > 1 {
		t, err := d.Token()
		if err != nil {
			return fmt.Errorf("adhoc: payload %s: %w", start.Name.Local, err)
		}
		switch t := t.(type) {
		case xml.StartElement:
			writeStart(t)
		case xml.EndElement:
			b.WriteString("</" + t.Name.Local + ">")
			spaces = spaces[:len(spaces)-1]
		case xml.CharData:
			b.WriteString(textEscaper.Replace(string(t)))
		}
	}
	p.XML = b.String()
	return nil
}
