package modules_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules"
)

// TestFormStage: an administration command's stage shows its title and
// instructions, FORM_TYPE first, then the fields built for each request.
func TestFormStage(t *testing.T) {
	built := 0
	stages := modules.FormStage("Title", "Do this.", "urn:example:cmds", func(context.Context) []form.Field {
		built++
		return []form.Field{form.JID("room", form.Required), form.Text("reason")}
	})
	if len(stages) != 1 {
		t.Fatalf("%d stages, want 1", len(stages))
	}
	for round := 1; round <= 2; round++ {
		d, err := stages[0].Form(context.Background(), &adhoc.Request{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Title() != "Title" || d.Instructions() != "Do this." {
			t.Fatalf("title %q, instructions %q", d.Title(), d.Instructions())
		}
		var vars []string
		d.ForFields(func(f form.FieldData) { vars = append(vars, f.Var+":"+string(f.Type)) })
		if got, want := strings.Join(vars, " "), "FORM_TYPE:hidden room:jid-single reason:text-single"; got != want {
			t.Fatalf("round %d: fields %q, want %q", round, got, want)
		}
		if v, _ := d.GetString("FORM_TYPE"); v != "urn:example:cmds" {
			t.Fatalf("FORM_TYPE %q", v)
		}
		if built != round {
			t.Fatalf("fields built %d times after %d forms", built, round)
		}
	}
}

// TestAuditAdmin: one line per action, naming who (bare), the command, the
// targets and the outcome.
func TestAuditAdmin(t *testing.T) {
	who := jid.MustParse("admin@localhost/laptop")
	for _, tc := range []struct {
		name string
		res  *adhoc.Result
		err  error
		want string
	}{
		{"completed", &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteInfo, Text: "done"}}}, nil, "completed"},
		{"an error note", &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteError, Text: "no such room"}}}, nil, `"failed: no such room"`},
		{"an error", nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.Forbidden}, `"error: forbidden"`},
		{"an error beats the notes", &adhoc.Result{Notes: []adhoc.Note{{Type: adhoc.NoteError, Text: "x"}}}, errors.New("disk"), `"error: `},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		modules.AuditAdmin(log, &adhoc.Request{Requester: who}, "destroy-room", []string{"a@muc.localhost"}, tc.res, tc.err)
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.Contains(line, `msg="admin action" by=admin@localhost command=destroy-room targets=[a@muc.localhost] outcome=`+tc.want) {
			t.Errorf("%s: %q", tc.name, line)
		}
	}
	var buf bytes.Buffer
	quiet := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	modules.AuditAdmin(quiet, &adhoc.Request{Requester: who}, "list-rooms", nil, nil, nil)
	if buf.Len() != 0 {
		t.Errorf("logged below the handler's level: %q", buf.String())
	}
}
