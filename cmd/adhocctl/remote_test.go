package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// remoteGreeting is the node of the command b.test offers to other
// domains' users (Remote) in TestRemoteCommands.
const remoteGreeting = "urn:test:remote-greeting"

// TestRemoteCommands drives another domain's commands over federation, as
// any XEP-0050 client can: alice@a.test, logged in to a.test (where she is
// an administrator), lists b.test's commands and sees only the one b.test
// marks Remote, runs it to its completed note, and is refused b.test's
// XEP-0133 administration (and its local-only commands) with forbidden,
// while the same admin command on her own server works.
func TestRemoteCommands(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "adhocctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	remote := adhoctest.Greeting()
	remote.Node, remote.Remote = remoteGreeting, true
	a, _ := servertest.Federated(t, func(a, b *config.Config) {
		a.Admins = []string{"alice@a.test"}
		b.Admins = []string{"root@b.test"}
	}, server.WithCommands(adhoctest.Greeting(), remote))
	a.AddUser("alice", "wonderland")
	ca := filepath.Join(a.Dir, "selfsigned-cert.pem")

	// alice runs adhocctl as alice@a.test, connected to a.test's c2s
	// listener, and returns stdout, stderr and the exit status.
	alice := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		full := append([]string{"--jid", "alice@a.test", "--server", a.Addr, "--ca", ca}, args...)
		cmd := exec.CommandContext(ctx, bin, full...)
		cmd.Env = append(os.Environ(), "ADHOCCTL_PASSWORD=wonderland")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errb.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("adhocctl %v: %v", args, err)
		}
		return out.String(), errb.String(), 0
	}

	// The control: on her own server alice is an administrator, so the
	// XEP-0133 commands are listed and run for her; b.test's command is
	// not there.
	out, errs, code := alice("list")
	if code != 0 || !strings.Contains(out, "http://jabber.org/protocol/admin#get-online-users-num") || strings.Contains(out, remoteGreeting) {
		t.Fatalf("list of a.test: exit %d, stderr %q, printed\n%s", code, errs, out)
	}
	out, errs, code = alice("run", "get-online-users-num")
	if code != 0 || out != "The number of online users: 1\n" {
		t.Fatalf("get-online-users-num on a.test: exit %d, stderr %q, printed\n%s", code, errs, out)
	}

	// list JID and --to JID list: b.test's commands as a user of another
	// domain sees them, only the Remote one (the first one sets up the
	// s2s streams).
	for _, args := range [][]string{{"list", "b.test"}, {"--to", "b.test", "list"}} {
		out, errs, code = alice(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if cols := strings.Fields(lines[0]); len(lines) != 1 || len(cols) != 2 || cols[0] != remoteGreeting || cols[1] != "Greeting" {
			t.Fatalf("%v: want b.test's Remote command alone, printed\n%s", args, out)
		}
		for _, hidden := range []string{adhoctest.TimeNode, "admin#"} {
			if strings.Contains(out, hidden) {
				t.Fatalf("%v lists %s to alice@a.test:\n%s", args, hidden, out)
			}
		}
	}
	out, _, code = alice("--json", "list", "b.test")
	var items []struct{ Node, Name string }
	if code != 0 || json.Unmarshal([]byte(out), &items) != nil || len(items) != 1 || items[0].Node != remoteGreeting || items[0].Name != "Greeting" {
		t.Fatalf("list b.test --json: exit %d, printed %q", code, out)
	}

	// run --to b.test: the Remote command completes with its note, which
	// names the requester as b.test saw her, across federation.
	out, errs, code = alice("--to", "b.test", "run", remoteGreeting)
	if code != 0 || out != "info: hello alice@a.test\n" {
		t.Fatalf("run %s at b.test: exit %d, stderr %q, printed %q", remoteGreeting, code, errs, out)
	}
	out, _, code = alice("--to", "b.test", "--json", "run", remoteGreeting)
	var res struct {
		Node, Status string
		Notes        []struct{ Type, Text string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Node != remoteGreeting || res.Status != "completed" ||
		len(res.Notes) != 1 || res.Notes[0].Type != "info" || res.Notes[0].Text != "hello alice@a.test" {
		t.Fatalf("run %s at b.test --json: exit %d, printed %q", remoteGreeting, code, out)
	}

	// b.test's XEP-0133 commands (by short name and by node) and its
	// local-only command: refused with forbidden, exit status 1, nothing
	// on standard output. alice being an administrator of a.test gives her
	// nothing on b.test.
	for _, cmd := range []string{"get-online-users-num", "http://jabber.org/protocol/admin#add-user", adhoctest.TimeNode} {
		out, errs, code = alice("--to", "b.test", "run", cmd)
		if code != 1 || out != "" || !strings.HasPrefix(errs, "adhocctl: ") || !strings.Contains(errs, "forbidden") {
			t.Errorf("run %s at b.test: exit %d, stdout %q, stderr %q; want exit 1 and a forbidden error", cmd, code, out, errs)
		}
	}
}
