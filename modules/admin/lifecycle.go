package admin

import (
	"context"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/form"

	"github.com/adhocd/adhocd/adhoc"
)

// minStopDelay lets the command's own reply reach the administrator before
// the streams close.
const minStopDelay = 500 * time.Millisecond

// lifecycleCommands: restart and shut down the service (XEP-0133 §4.30,
// §4.31). The announcement, if any, goes to every online session at once;
// after the chosen delay (none: at once) every stream is closed with
// system-shutdown and the store is closed cleanly. adhocd then exits 0, or
// for a restart executes itself again (exit status 75 if it cannot, for a
// supervisor to restart it). In a cluster they act on the replica that
// runs them, and say so.
func (m *Module) lifecycleCommands() []spec {
	stop := func(name, label, title, instr, delayLabel string, restart bool) spec {
		return spec{
			name: name, label: label, title: title, instr: instr,
			fields: func(context.Context) []form.Field {
				return []form.Field{
					form.List("delay", form.Label(delayLabel),
						form.ListItem("30 seconds", "30"), form.ListItem("60 seconds", "60"), form.ListItem("90 seconds", "90"),
						form.ListItem("2 minutes", "120"), form.ListItem("3 minutes", "180"), form.ListItem("4 minutes", "240"),
						form.ListItem("5 minutes", "300")),
					form.TextMulti("announcement", form.Label("Announcement")),
				}
			},
			run: func(ctx context.Context, r *adhoc.Request) (*adhoc.Result, []string, error) {
				delay := time.Duration(0)
				if s := r.Values.Get("delay"); s != "" {
					n, _ := strconv.Atoi(s) // the form already checked it is an option
					delay = time.Duration(n) * time.Second
				}
				// In a cluster this replica alone stops: the announcement
				// goes to its users, and the note says so.
				cluster := m.h.Config().Cluster.Enabled()
				sent := 0
				if text := strings.Join(r.Values["announcement"], "\n"); text != "" {
					sent = m.broadcast(ctx, text, cluster)
				}
				time.AfterFunc(max(delay, minStopDelay), func() { m.h.Stop(restart) })
				verb := "shut down"
				if restart {
					verb = "restart"
				}
				if cluster {
					return done("this replica will %s in %s, the other replicas of the cluster go on (their clients are not affected; a restart of the whole cluster is a rollout); the announcement went to its %s",
						verb, delay, plural(sent, "session", "sessions")), nil, nil
				}
				return done("the service will %s in %s; the announcement went to %s", verb, delay, plural(sent, "session", "sessions")), nil, nil
			},
		}
	}
	return []spec{
		stop("restart", "Restart Service", "Restarting the Service", "Fill out this form to restart the service.", "Time delay before restarting", true),
		stop("shutdown", "Shut Down Service", "Shutting Down the Service", "Fill out this form to shut down the service.", "Time delay before shutting down", false),
	}
}
