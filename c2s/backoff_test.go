package c2s_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestBackoffPerAccountAndAddress: wrong passwords for one account from
// 127.0.0.1 block that account from there
// (limits.max_auth_failures_per_account_address) — with PLAIN and with
// SCRAM, whose first message names the account — while another account
// still logs in from the same address; a spray of guesses over many
// accounts is stopped by the whole-address budget
// (limits.max_auth_failures_per_address), which then blocks every account.
func TestBackoffPerAccountAndAddress(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.MaxAuthFailures = 1
		c.Limits.MaxAuthFailuresPerAccountAddress = 3
		c.Limits.MaxAuthFailuresPerAddress = 8
		c.Limits.AuthFailureWindow = config.Duration(time.Minute)
	})
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("carol", "singer")
	try := func(mech, first string) string {
		t.Helper()
		r := srv.RawDial()
		r.StartTLS(srv.ClientTLS)
		r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + mech + `'>` + b64(first) + `</auth>`)
		got, _ := r.ReadUntil(`</failure>|<success|</challenge>`, servertest.Wait)
		return got
	}
	plain := func(user, pw string) string { return try("PLAIN", "\x00"+user+"\x00"+pw) }

	for i := range 3 {
		if got := plain("alice", fmt.Sprintf("guess%d", i)); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("guess %d for alice: %q", i, got)
		}
	}
	if got := plain("alice", "wonderland"); !strings.Contains(got, "<temporary-auth-failure/>") {
		t.Fatalf("alice's right password after her failures from this address: %q", got)
	}
	// SCRAM names the account in its first message: refused before any
	// challenge.
	if got := try("SCRAM-SHA-256", "n,,n=alice,r=0123456789abcdef"); !strings.Contains(got, "<temporary-auth-failure/>") {
		t.Fatalf("alice over SCRAM after her failures: %q", got)
	}
	// The same address, another account: not locked out by alice's guesser.
	if got := plain("bob", "builder"); !strings.Contains(got, "<success") {
		t.Fatalf("bob from the same address: %q", got)
	}
	if got := try("SCRAM-SHA-256", "n,,n=bob,r=0123456789abcdef"); !strings.Contains(got, "<challenge") {
		t.Fatalf("bob over SCRAM from the same address: %q", got)
	}

	// A spray: one guess each for many accounts (known or not) until the
	// address has 8 failures, alice's 3 included.
	for i := range 5 {
		if got := plain(fmt.Sprintf("user%d", i), "guess"); !strings.Contains(got, "<not-authorized/>") {
			t.Fatalf("spray guess %d: %q", i, got)
		}
	}
	if got := plain("carol", "singer"); !strings.Contains(got, "<temporary-auth-failure/>") {
		t.Fatalf("carol's right password after the spray from her address: %q", got)
	}
}
