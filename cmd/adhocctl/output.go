package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

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
	for _, c := range cmds {
		fmt.Fprintf(out, "%-55s %s\n", c.Node, c.Name)
	}
	return 0, nil
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
	if asJSON {
		type note struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		v := struct {
			Node   string       `json:"node"`
			Status string       `json:"status"`
			Notes  []note       `json:"notes"`
			Forms  []adhoc.Form `json:"forms"`
		}{Node: r.Node, Status: string(r.Status), Notes: []note{}, Forms: r.Forms}
		for _, n := range r.Notes {
			v.Notes = append(v.Notes, note{string(n.Type), n.Text})
		}
		if v.Forms == nil {
			v.Forms = []adhoc.Form{}
		}
		return code, json.NewEncoder(out).Encode(v)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "%s: %s\n", n.Type, n.Text)
	}
	for _, f := range r.Forms {
		if f.Title != "" {
			fmt.Fprintln(out, f.Title)
		}
		for _, fl := range f.Fields {
			if fl.Var == "FORM_TYPE" {
				continue
			}
			fmt.Fprintf(out, "%s: %s\n", label(fl), strings.Join(fl.Values, ", "))
		}
		if len(f.Reported) > 0 {
			cols := make([]string, len(f.Reported))
			for i, c := range f.Reported {
				cols[i] = label(c)
			}
			fmt.Fprintln(out, strings.Join(cols, "\t"))
			for _, it := range f.Items {
				row := make([]string, len(f.Reported))
				for i, c := range f.Reported {
					for _, fl := range it.Fields {
						if fl.Var == c.Var {
							row[i] = strings.Join(fl.Values, ", ")
						}
					}
				}
				fmt.Fprintln(out, strings.Join(row, "\t"))
			}
		}
	}
	if r.Status != adhoc.Completed {
		fmt.Fprintf(out, "status: %s\n", r.Status)
	}
	return code, nil
}

func label(f adhoc.Field) string {
	if f.Label != "" {
		return f.Label
	}
	return f.Var
}
