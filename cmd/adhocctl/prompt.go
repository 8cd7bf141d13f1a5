package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/adhocd/adhocd/adhoc"
)

// prompter fills each stage's form: from --field values first, then by
// asking (in a terminal, or with --interactive), else it fails naming the
// missing required fields.
type prompter struct {
	in          *bufio.Reader
	out         io.Writer
	tty         bool
	interactive bool
	given       adhoc.Values
}

func (p *prompter) stage(_ context.Context, r *adhoc.Response) (adhoc.Action, adhoc.Values, error) {
	vals := adhoc.Values{}
	for _, f := range r.Forms {
		if f.Title != "" && p.interactive {
			fmt.Fprintf(p.out, "== %s\n", f.Title)
		}
		for _, ins := range f.Instructions {
			if p.interactive {
				fmt.Fprintln(p.out, ins)
			}
		}
		for _, fl := range f.Fields {
			if fl.Var == "" || fl.Type == "fixed" {
				continue
			}
			if v, ok := p.given[fl.Var]; ok {
				vals[fl.Var] = v
				continue
			}
			if fl.Type == "hidden" {
				vals[fl.Var] = fl.Values
				continue
			}
			if !p.interactive {
				if fl.IsRequired() {
					return "", nil, fmt.Errorf("missing --field %s=… (%s)", fl.Var, label(fl))
				}
				if len(fl.Values) > 0 {
					vals[fl.Var] = fl.Values
				}
				continue
			}
			v, err := p.ask(fl)
			if err != nil {
				return "", nil, err
			}
			vals[fl.Var] = v
		}
	}
	a := r.Default
	if a == "" {
		a = adhoc.Complete
	}
	return a, vals, nil
}

// ask prompts for one field; an empty answer keeps the field's current
// values. Multi-valued fields take one value per line, ended by an empty
// line.
func (p *prompter) ask(f adhoc.Field) ([]string, error) {
	req := ""
	if f.IsRequired() {
		req = " (required)"
	}
	fmt.Fprintf(p.out, "%s%s", label(f), req)
	if len(f.Options) > 0 {
		opts := make([]string, len(f.Options))
		for i, o := range f.Options {
			opts[i] = o.Value
		}
		fmt.Fprintf(p.out, " [%s]", strings.Join(opts, ", "))
	}
	if len(f.Values) > 0 && f.Type != "text-private" {
		fmt.Fprintf(p.out, " {%s}", strings.Join(f.Values, ", "))
	}
	multi := strings.HasSuffix(f.Type, "-multi")
	if multi {
		fmt.Fprint(p.out, " (one per line, empty line to end)")
	}
	fmt.Fprint(p.out, ": ")
	if f.Type == "text-private" {
		s, err := readSecret(p.in, p.tty, p.out)
		return []string{s}, err
	}
	var vals []string
	for {
		line, err := p.in.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" || !multi {
			if line != "" {
				vals = append(vals, line)
			}
			if len(vals) == 0 {
				vals = f.Values
			}
			return vals, nil
		}
		vals = append(vals, line)
		if errors.Is(err, io.EOF) {
			return vals, nil
		}
	}
}
