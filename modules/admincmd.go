package modules

import (
	"context"
	"log/slog"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
)

// The shape every administration command shares, on the server JID
// (modules/admin, XEP-0133) and on a service's JID (modules/muc): one form
// stage whose FORM_TYPE names the commands' namespace, and one audit log
// line per action.

// FormType is the hidden FORM_TYPE field of a form of namespace ns
// (XEP-0068 §2).
func FormType(ns string) form.Field { return form.Hidden("FORM_TYPE", form.Value(ns)) }

// FormStage is the one stage of a command: a form with title and
// instructions, the FORM_TYPE ns, then the fields fields builds for the
// request's context (the current values of what the command changes, say).
func FormStage(title, instructions, ns string, fields func(ctx context.Context) []form.Field) []adhoc.Stage {
	formType := FormType(ns)
	return []adhoc.Stage{{Form: func(ctx context.Context, _ *adhoc.Request) (*form.Data, error) {
		fs := []form.Field{form.Title(title), form.Instructions(instructions), formType}
		return form.New(append(fs, fields(ctx)...)...), nil
	}}}
}

// AuditAdmin writes the one log line of an administration action: who
// (r's requester, bare), which command, which targets, and the outcome —
// completed, "error: CONDITION" for err, or "failed: TEXT" for res's error
// note (what the administrator has to fix). No field value is logged
// beyond the targets the command names.
func AuditAdmin(log *slog.Logger, r *adhoc.Request, command string, targets []string, res *adhoc.Result, err error) {
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		// Not logged: the arguments are not even made.
		return
	}
	outcome := "completed"
	switch {
	case err != nil:
		outcome = "error: " + adhoc.Condition(err)
	case res != nil:
		for _, n := range res.Notes {
			if n.Type == adhoc.NoteError {
				outcome = "failed: " + n.Text
			}
		}
	}
	LogAdminAction(log, r.Requester.Bare().String(), command, targets, outcome)
}

// LogAdminAction writes the audit line of an administrative action: who
// took it (a bare JID, or the local user on the control socket), the
// command, its targets and its outcome. Every way in writes the same line.
func LogAdminAction(log *slog.Logger, by, command string, targets []string, outcome string) {
	log.Info("admin action", "by", by, "command", command, "targets", targets, "outcome", outcome)
}
