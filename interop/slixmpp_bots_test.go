package interop_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// botReport is what slixmpp_bot.py printed.
type botReport struct {
	mech        string   // MECHANISM: what the bot logged in with
	failures    []string // AUTH_FAILED: "<mech> <condition>"
	texts       []string // AUTH_FAILED_TEXT: the failures' <text/>
	gaveUp      []string // GAVE_UP: the events the bot's handler acted on
	offered     []string // OFFERED
	loginFailed string   // LOGIN_FAILED
	command     *struct {
		Status string              `json:"status"`
		Notes  [][]string          `json:"notes"`
		Fields map[string][]string `json:"fields"`
	}
	ok bool
}

// runBot starts a server with channel binding on or off, an administrator
// bot account and alice online, and runs slixmpp_bot.py of kind against it
// over STARTTLS with TLS 1.3 (the default).
func runBot(t *testing.T, kind string, channelBinding bool) botReport {
	t.Helper()
	srv := servertest.Start(t, func(c *config.Config) {
		c.Admins = []string{"bot@localhost"}
		c.C2S.ChannelBinding = channelBinding
	})
	const botPW = "bot-pw"
	bot := srv.AddUser("bot", botPW)
	srv.AddUser("alice", "alice-pw")
	srv.Dial("alice", "alice-pw", "")

	lines := runScript(t, 60*time.Second, "slixmpp_bot.py", append(serverArgs(t, srv),
		"--jid", bot,
		"--password", botPW,
		"--kind", kind,
		"--server", srv.Domain().String(),
		"--timeout", "30",
	)...)
	var rep botReport
	for _, line := range lines {
		word, rest, _ := strings.Cut(line, " ")
		f := strings.Fields(rest)
		switch word {
		case "MECHANISM":
			if len(f) == 2 {
				rep.mech = f[1]
			}
		case "AUTH_FAILED":
			rep.failures = append(rep.failures, strings.Join(f[1:], " "))
		case "AUTH_FAILED_TEXT":
			// <role> <mech> <JSON text>
			parts := strings.SplitN(rest, " ", 3)
			var text string
			if err := json.Unmarshal([]byte(parts[len(parts)-1]), &text); len(parts) != 3 || err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			rep.texts = append(rep.texts, text)
		case "GAVE_UP":
			rep.gaveUp = append(rep.gaveUp, rest)
		case "OFFERED":
			rep.offered = f
		case "LOGIN_FAILED":
			rep.loginFailed = rest
		case "COMMAND":
			if err := json.Unmarshal([]byte(rest), &rep.command); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
		case "OK":
			rep.ok = true
		}
	}
	return rep
}

// checkBotCommand checks the bot ran get-online-users-num as an
// administrator and was told alice and itself are online.
func checkBotCommand(t *testing.T, rep botReport) {
	t.Helper()
	if rep.command == nil {
		t.Fatal("the bot ran no command")
	}
	if rep.command.Status != "completed" || !slices.Equal(rep.command.Fields["onlineusersnum"], []string{"2"}) {
		t.Errorf("get-online-users-num: %+v, want completed with onlineusersnum 2 (alice and the bot)", *rep.command)
	}
	if !rep.ok {
		t.Error("script did not print OK")
	}
}

// TestSlixmppBotFailedAllAuth is a slixmpp 1.8.3 bot (Debian's
// python3-slixmpp) that disconnects on failed_all_auth, with the server's
// default configuration over TLS 1.3: slixmpp binds SCRAM-*-PLUS to
// tls-unique only, which TLS 1.3 lacks, so its -PLUS attempts fail; each
// failure's <text/> names the binding types the connection has, slixmpp
// falls back to SCRAM-SHA-256 and the bot logs in and runs an admin command.
func TestSlixmppBotFailedAllAuth(t *testing.T) {
	requireSlixmpp(t)
	rep := runBot(t, "failed-all-auth", true)
	if rep.mech != "SCRAM-SHA-256" || rep.loginFailed != "" {
		t.Fatalf("logged in with %q (login failure %s), want SCRAM-SHA-256", rep.mech, rep.loginFailed)
	}
	if len(rep.gaveUp) != 0 {
		t.Errorf("the bot's handler ran on %v", rep.gaveUp)
	}
	if !slices.Contains(rep.offered, "SCRAM-SHA-256-PLUS") || !slices.Contains(rep.offered, "SCRAM-SHA-256") {
		t.Errorf("offered %v, want SCRAM-SHA-256-PLUS and SCRAM-SHA-256", rep.offered)
	}
	if len(rep.failures) == 0 {
		t.Error("no SASL failure: slixmpp did not try -PLUS")
	}
	for _, f := range rep.failures {
		if !strings.Contains(f, "-PLUS ") {
			t.Errorf("unexpected SASL failure: %s", f)
		}
	}
	checkBindingTexts(t, rep)
	checkBotCommand(t, rep)
}

// TestSlixmppBotFailedAuth is a slixmpp 1.8.3 bot (Debian's
// python3-slixmpp) with the usual failed_auth handler that disconnects. With
// the default configuration over TLS 1.3 it gives up at the failure of its
// first attempt, SCRAM-SHA-256-PLUS, and never logs in (the problem users
// report; the failure's <text/> tells them why). With c2s.channel_binding
// off the server offers no -PLUS mechanism, so the bot's first attempt is
// SCRAM-SHA-256, it logs in without a failure and runs an admin command.
func TestSlixmppBotFailedAuth(t *testing.T) {
	requireSlixmpp(t)
	t.Run("channel binding on", func(t *testing.T) {
		rep := runBot(t, "failed-auth", true)
		if rep.loginFailed == "" || rep.mech != "" || rep.command != nil {
			t.Errorf("mechanism %q, command %+v, login failure %q: want no login", rep.mech, rep.command, rep.loginFailed)
		}
		if !slices.Equal(rep.gaveUp, []string{"failed_auth"}) {
			t.Errorf("the bot gave up on %v, want once on failed_auth", rep.gaveUp)
		}
		if len(rep.failures) == 0 || !strings.HasPrefix(rep.failures[0], "SCRAM-SHA-256-PLUS ") {
			t.Errorf("SASL failures %v, want SCRAM-SHA-256-PLUS's first", rep.failures)
		}
		checkBindingTexts(t, rep)
	})
	t.Run("channel binding off", func(t *testing.T) {
		rep := runBot(t, "failed-auth", false)
		if rep.mech != "SCRAM-SHA-256" || rep.loginFailed != "" {
			t.Fatalf("logged in with %q (login failure %s), want SCRAM-SHA-256", rep.mech, rep.loginFailed)
		}
		if len(rep.failures) != 0 || len(rep.gaveUp) != 0 {
			t.Errorf("SASL failures %v, bot gave up on %v: want neither", rep.failures, rep.gaveUp)
		}
		if !slices.Contains(rep.offered, "SCRAM-SHA-256") || slices.ContainsFunc(rep.offered, func(m string) bool { return strings.HasSuffix(m, "-PLUS") }) {
			t.Errorf("offered %v, want SCRAM-SHA-256 and no -PLUS", rep.offered)
		}
		checkBotCommand(t, rep)
	})
}

// checkBindingTexts checks every SASL failure the bot got had a <text/>
// naming the channel-binding types a TLS 1.3 connection has.
func checkBindingTexts(t *testing.T, rep botReport) {
	t.Helper()
	if len(rep.texts) != len(rep.failures) {
		t.Errorf("%d SASL failures, %d with a <text/>: %q", len(rep.failures), len(rep.texts), rep.texts)
	}
	for _, text := range rep.texts {
		if !strings.Contains(text, "tls-exporter") || !strings.Contains(text, "tls-server-end-point") {
			t.Errorf("SASL failure text %q does not name tls-exporter and tls-server-end-point", text)
		}
	}
}
