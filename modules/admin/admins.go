package admin

import (
	"context"
	"slices"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
)

// adminCommands: the admin list (XEP-0133 §4.29).
func (m *Module) adminCommands() []spec {
	return []spec{{
		name: "edit-admin", label: "Edit Admin List", title: "Editing the Admin List",
		instr: "Fill out this form to edit the list of entities who have administrative privileges.",
		fields: func(context.Context) []form.Field {
			configured, stored := m.h.Admins()
			opts := []form.Option{form.Label("The admin list")}
			for _, a := range sortedUnion(configured, stored) {
				opts = append(opts, form.Value(a))
			}
			return []form.Field{form.JIDMulti("adminjids", opts...)}
		},
		run: func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
			var js []string
			if len(r.Values["adminjids"]) > 0 {
				parsed, err := m.targets(ctx, r, "adminjids", false, false)
				if err != nil {
					res, err := targetResult(err)
					return res, r.Values["adminjids"], err
				}
				js = strs(parsed)
			}
			configured, _ := m.h.Admins()
			var stored, kept []string
			for _, j := range js {
				if !slices.Contains(configured, j) {
					stored = append(stored, j)
				}
			}
			for _, c := range configured {
				if !slices.Contains(js, c) {
					kept = append(kept, c)
				}
			}
			if err := m.h.SetAdmins(ctx, stored); err != nil {
				return nil, js, err
			}
			res := done("the admin list is now %d entries", len(sortedUnion(configured, stored)))
			for _, k := range kept {
				res.Notes = append(res.Notes, adhoc.Note{Type: adhoc.NoteWarn, Text: k + " stays an administrator: config.yaml lists it"})
			}
			return res, js, nil
		},
	}}
}

func sortedUnion(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}
