package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
)

func list(ctx context.Context, req *adhoc.Requester, to jid.JID, asJSON bool, out io.Writer) (int, error) {
	cmds, err := req.Commands(ctx, to)
	if err != nil {
		return 1, err
	}
	if asJSON {
		type item struct {
			Node string `json:"node"`
			Name string `json:"name"`
		}
		items := []item{}
		for _, c := range cmds {
			items = append(items, item{c.Node, c.Name})
		}
		return 0, json.NewEncoder(out).Encode(items)
	}
	rows := make([][]string, 0, len(cmds))
	for _, c := range cmds {
		rows = append(rows, []string{c.Node, c.Name})
	}
	w := &errWriter{w: out}
	table(w, "", rows)
	if w.err != nil {
		return 1, fmt.Errorf("write the list: %w", w.err)
	}
	return 0, nil
}

// rosterNS is the namespace of RFC 6121 rosters.
const rosterNS = "jabber:iq:roster"

// rosterItem is one item of a jabber:iq:roster query (RFC 6121 §2.1.2).
type rosterItem struct {
	JID          string   `xml:"jid,attr" json:"jid"`
	Name         string   `xml:"name,attr" json:"name,omitempty"`
	Subscription string   `xml:"subscription,attr" json:"subscription"`
	Ask          string   `xml:"ask,attr" json:"ask,omitempty"`
	Groups       []string `xml:"group" json:"groups,omitempty"`
}

// payloads sorts what the requester kept as XML: roster queries are read
// into their items (several queries in one place are joined; roster is nil
// when there is none), everything else stays XML.
func payloads(ps []adhoc.Payload) (roster *[]rosterItem, other []adhoc.Payload, err error) {
	for _, p := range ps {
		if !p.Is(rosterNS, "query") {
			other = append(other, p)
			continue
		}
		var q struct {
			Items []rosterItem `xml:"item"`
		}
		if err := p.Decode(&q); err != nil {
			return nil, nil, err
		}
		if roster == nil {
			roster = &[]rosterItem{}
		}
		for _, it := range q.Items {
			if it.Subscription == "" {
				it.Subscription = "none" // RFC 6121 §2.1.2.5
			}
			*roster = append(*roster, it)
		}
	}
	return roster, other, nil
}

// jsonForm is a form as --json prints it: the requester's form (fields,
// reported columns and items) with its roster read into items and its other
// payloads as XML.
type jsonForm struct {
	adhoc.Form
	Roster   *[]rosterItem   `json:"roster,omitempty"`
	Payloads []adhoc.Payload `json:"payloads,omitempty"`
}

// jsonResult is everything a command returned, for --json.
type jsonResult struct {
	Node   string     `json:"node"`
	Status string     `json:"status"`
	Notes  []jsonNote `json:"notes"`
	Forms  []jsonForm `json:"forms"`
	// Roster and Payloads are what the command returned beside its forms.
	Roster   *[]rosterItem   `json:"roster,omitempty"`
	Payloads []adhoc.Payload `json:"payloads,omitempty"`
}

type jsonNote struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// report prints the final response and returns the exit status: 1 when the
// command ended with an error note or was canceled.
func report(r *adhoc.Response, asJSON bool, out io.Writer) (int, error) {
	code := 0
	for _, n := range r.Notes {
		if n.Type == adhoc.NoteError {
			code = 1
		}
	}
	if r.Status != adhoc.Completed {
		code = 1
	}
	res := jsonResult{Node: r.Node, Status: string(r.Status), Notes: []jsonNote{}, Forms: []jsonForm{}}
	for _, n := range r.Notes {
		res.Notes = append(res.Notes, jsonNote{string(n.Type), n.Text})
	}
	for _, f := range r.Forms {
		jf := jsonForm{Form: f}
		var err error
		if jf.Roster, jf.Payloads, err = payloads(f.Payloads); err != nil {
			return 1, err
		}
		res.Forms = append(res.Forms, jf)
	}
	var err error
	if res.Roster, res.Payloads, err = payloads(r.Payloads); err != nil {
		return 1, err
	}
	if asJSON {
		if err := json.NewEncoder(out).Encode(res); err != nil {
			return 1, fmt.Errorf("write the result: %w", err)
		}
		return code, nil
	}
	if err := printResult(out, res); err != nil {
		return 1, fmt.Errorf("write the result: %w", err)
	}
	return code, nil
}

// printResult writes the result for a person: notes, then each form (title,
// instructions, fields as "label: values", a table of its items, its
// roster and other payloads), then what came beside the forms.
func printResult(out io.Writer, r jsonResult) error {
	w := &errWriter{w: out}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "%s: %s\n", n.Type, n.Text)
	}
	for _, f := range r.Forms {
		if f.Title != "" {
			fmt.Fprintln(w, f.Title)
		}
		for _, ins := range f.Instructions {
			fmt.Fprintln(w, ins)
		}
		for _, fl := range f.Fields {
			if fl.Var == "FORM_TYPE" {
				continue
			}
			fmt.Fprintf(w, "%s: %s\n", label(fl), strings.Join(fl.Values, ", "))
		}
		if len(f.Reported) > 0 {
			rows := [][]string{make([]string, len(f.Reported))}
			for i, c := range f.Reported {
				rows[0][i] = label(c)
			}
			for _, it := range f.Items {
				row := make([]string, len(f.Reported))
				for i, c := range f.Reported {
					for _, fl := range it.Fields {
						if fl.Var == c.Var {
							row[i] = strings.Join(fl.Values, ", ")
						}
					}
				}
				rows = append(rows, row)
			}
			table(w, "", rows)
		}
		printPayloads(w, f.Roster, f.Payloads)
	}
	printPayloads(w, r.Roster, r.Payloads)
	if r.Status != string(adhoc.Completed) {
		fmt.Fprintf(w, "status: %s\n", r.Status)
	}
	return w.err
}

// printPayloads writes a roster as a table under "roster:" (or "roster:
// empty") and any other payload as its XML.
func printPayloads(w io.Writer, roster *[]rosterItem, other []adhoc.Payload) {
	if roster != nil {
		if len(*roster) == 0 {
			fmt.Fprintln(w, "roster: empty")
		} else {
			fmt.Fprintln(w, "roster:")
			rows := [][]string{{"JID", "Name", "Subscription", "Ask", "Groups"}}
			for _, it := range *roster {
				rows = append(rows, []string{it.JID, it.Name, it.Subscription, it.Ask, strings.Join(it.Groups, ", ")})
			}
			table(w, "  ", rows)
		}
	}
	for _, p := range other {
		fmt.Fprintf(w, "payload: %s\n", p.XML)
	}
}

// table writes rows in columns two spaces apart, each line after indent,
// with no spaces at the end of a line.
func table(w io.Writer, indent string, rows [][]string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	cell := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	for _, row := range rows {
		for i := range row {
			row[i] = cell.Replace(row[i])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
	for line := range strings.Lines(b.String()) {
		fmt.Fprintln(w, indent+strings.TrimRight(line, " \n"))
	}
}

// errWriter keeps the first write error, so that printing can go on
// unchecked and be checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func label(f adhoc.Field) string {
	if f.Label != "" {
		return f.Label
	}
	return f.Var
}
