package interop_test

import (
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
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
			mechs, failures, _ := runMessage(t, tc.tlsMax, false)
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

// TestSlixmppOfflineMessage: a message sent by slixmpp to an offline
// slixmpp user is kept and delivered when it logs in, and slixmpp's XEP-0203
// plugin reads the delay stamp the server added.
func TestSlixmppOfflineMessage(t *testing.T) {
	requireSlixmpp(t)
	before := time.Now().Add(-time.Second)
	_, _, delayed := runMessage(t, "", true)
	if len(delayed) != 1 {
		t.Fatalf("want one DELAYED line, got %q", delayed)
	}
	stamp, err := time.Parse(time.RFC3339Nano, delayed[0])
	if err != nil || stamp.Before(before) || stamp.After(time.Now()) {
		t.Fatalf("delay stamp %q (%v): want the time the server kept the message", delayed[0], err)
	}
}

// runMessage runs the two-client script against a fresh server and returns
// the mechanism each client logged in with, the SASL failures it saw and the
// delay stamps the receiver read. With offline, the message is sent while
// the receiver is offline.
func runMessage(t *testing.T, tlsMax string, offline bool) (map[string]string, []string, []string) {
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
	if offline {
		args = append(args, "--offline")
	}
	lines := runScript(t, 60*time.Second, "slixmpp_message.py", args...)

	var received, ok bool
	var failures, delayed []string
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
		case strings.HasPrefix(line, "DELAYED "):
			delayed = append(delayed, strings.TrimPrefix(line, "DELAYED "))
		}
	}
	if !received {
		t.Errorf("receiver did not print %q", "RECEIVED "+body)
	}
	if !ok {
		t.Errorf("script did not print OK")
	}
	return mechs, failures, delayed
}
