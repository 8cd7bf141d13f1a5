package interop_test

import (
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/server/servertest"
)

// TestSlixmppMessage has one slixmpp client send a chat message to another
// through adhocd, both logged in over STARTTLS with SCRAM (PLAIN is disabled
// in the script), and checks the receiver got the body the test made up.
//
// slixmpp 1.8.3 (Debian 12) binds SCRAM-*-PLUS to tls-unique only, which TLS
// 1.2 has and TLS 1.3 does not (RFC 9266). Over TLS 1.2 it must log in with
// SCRAM-SHA-256-PLUS. Over TLS 1.3 its -PLUS attempts are refused, it retries
// plain SCRAM with the "y" flag, and adhocd must accept that retry (see
// auth.Stream) instead of locking the client out.
func TestSlixmppMessage(t *testing.T) {
	requireSlixmpp(t)
	for _, tc := range []struct {
		name, tlsMax, wantMech string
		plusRefusals           bool
	}{
		{"TLS 1.2 with channel binding", "1.2", "SCRAM-SHA-256-PLUS", false},
		{"TLS 1.3 falls back to SCRAM without binding", "", "SCRAM-SHA-256", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mechs, failures := runMessage(t, tc.tlsMax)
			for _, role := range []string{"sender", "receiver"} {
				if m := mechs[role]; m != tc.wantMech {
					t.Errorf("%s logged in with %q, want %s", role, m, tc.wantMech)
				}
			}
			for _, f := range failures {
				if !tc.plusRefusals || !strings.Contains(f, "-PLUS") {
					t.Errorf("unexpected SASL failure: %s", f)
				}
			}
		})
	}
}

// runMessage runs the two-client script against a fresh server and returns
// the mechanism each client logged in with and the SASL failures it saw.
func runMessage(t *testing.T, tlsMax string) (map[string]string, []string) {
	t.Helper()
	srv := servertest.Start(t)
	const senderPW, receiverPW = "wonderland", "looking-glass"
	sender := srv.AddUser("alice", senderPW)
	receiver := srv.AddUser("bob", receiverPW)
	body := randomBody(t)

	args := append(serverArgs(t, srv),
		"--sender-jid", sender,
		"--sender-password", senderPW,
		"--receiver-jid", receiver,
		"--receiver-password", receiverPW,
		"--body", body,
		"--timeout", "30",
	)
	if tlsMax != "" {
		args = append(args, "--tls-max", tlsMax)
	}
	lines := runScript(t, 60*time.Second, "slixmpp_message.py", args...)

	var received, ok bool
	var failures []string
	mechs := map[string]string{}
	for _, line := range lines {
		switch {
		case line == "RECEIVED "+body:
			received = true
		case line == "OK":
			ok = true
		case strings.HasPrefix(line, "MECHANISM "):
			if f := strings.Fields(line); len(f) == 3 {
				mechs[f[1]] = f[2]
			}
		case strings.HasPrefix(line, "AUTH_FAILED "):
			failures = append(failures, line)
		}
	}
	if !received {
		t.Errorf("receiver did not print %q", "RECEIVED "+body)
	}
	if !ok {
		t.Errorf("script did not print OK")
	}
	return mechs, failures
}
