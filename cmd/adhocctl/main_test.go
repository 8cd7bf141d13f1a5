package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/server/config"
	"github.com/adhocd/adhocd/server/servertest"
)

type ctl struct {
	bin, addr, ca string
	t             *testing.T
}

func setup(t *testing.T) (*servertest.Server, *ctl) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "adhocctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv := servertest.Start(t, func(c *config.Config) { c.Admins = []string{"root@localhost"} })
	srv.AddUser("root", "toor")
	return srv, &ctl{bin: bin, addr: srv.Addr, ca: filepath.Join(srv.Dir, "selfsigned-cert.pem"), t: t}
}

// run runs adhocctl as root with args and stdin; it returns stdout, stderr
// and the exit status.
func (c *ctl) run(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--jid", "root@localhost", "--server", c.addr, "--ca", c.ca}, args...)
	cmd := exec.CommandContext(ctx, c.bin, full...)
	cmd.Env = append(os.Environ(), "ADHOCCTL_PASSWORD=toor")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestListAndRun(t *testing.T) {
	srv, c := setup(t)
	out, errs, code := c.run("", "list")
	if code != 0 || !strings.Contains(out, "http://jabber.org/protocol/admin#add-user") || !strings.Contains(out, "urn:adhocd:admin#status") {
		t.Fatalf("list: %d %q %q", code, out, errs)
	}
	out, _, code = c.run("", "--json", "list")
	var items []struct{ Node, Name string }
	if code != 0 || json.Unmarshal([]byte(out), &items) != nil || len(items) < 30 {
		t.Fatalf("list --json: %d %q", code, out)
	}

	// Non-interactive: every field from --field.
	_, errs, code = c.run("", "run", "add-user", "--field", "accountjid=juliet@localhost", "--field", "password=R0m30", "--field", "password-verify=R0m30")
	if code != 0 {
		t.Fatalf("add-user: %d %q", code, errs)
	}
	srv.Dial("juliet", "R0m30", "")

	// JSON output of a count, checked against the store.
	out, _, code = c.run("", "--json", "run", "get-registered-users-num")
	var res struct {
		Status string
		Forms  []struct {
			Fields []struct {
				Var    string
				Values []string
			}
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Status != "completed" {
		t.Fatalf("get-registered-users-num --json: %d %q", code, out)
	}
	accts, err := srv.Store().Accounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, f := range res.Forms[0].Fields {
		if f.Var == "registeredusersnum" {
			got = f.Values[0]
		}
	}
	if got != strconv.Itoa(len(accts)) {
		t.Fatalf("registeredusersnum %q, store has %d", got, len(accts))
	}

	// A required field missing without a terminal: exit 1, naming it.
	_, errs, code = c.run("", "run", "delete-user")
	if code != 1 || !strings.Contains(errs, "accountjids") {
		t.Fatalf("missing field: %d %q", code, errs)
	}
	// A failure note: exit 1 and the note printed.
	out, _, code = c.run("", "run", "disable-user", "--field", "accountjids=ghost@localhost")
	if code != 1 || !strings.Contains(out, "error: nothing was changed: there is no account ghost@localhost") {
		t.Fatalf("failure note: %d %q", code, out)
	}
	// Operator short names. Two sessions: juliet's (dialled above) and
	// adhocctl's own.
	out, _, code = c.run("", "run", "status")
	if code != 0 || !strings.Contains(out, "Bound sessions: 2") {
		t.Fatalf("status: %d %q", code, out)
	}
}

// TestInteractive answers the prompts on standard input (--interactive
// stands for a terminal).
func TestInteractive(t *testing.T) {
	srv, c := setup(t)
	answers := strings.Join([]string{
		"romeo@localhost", // accountjid
		"Jul1et",          // password
		"Jul1et",          // password-verify
		"",                // email
		"Romeo",           // given_name
		"",                // surname
	}, "\n") + "\n"
	_, errs, code := c.run(answers, "--interactive", "run", "add-user")
	if code != 0 {
		t.Fatalf("interactive add-user: %d %q", code, errs)
	}
	for _, want := range []string{"== Adding a User", "The Jabber ID for the account to be added (required): ", "Retype password: "} {
		if !strings.Contains(errs, want) {
			t.Errorf("prompt %q missing from %q", want, errs)
		}
	}
	if strings.Contains(errs, "Jul1et") {
		t.Fatal("the password was echoed")
	}
	srv.Dial("romeo", "Jul1et", "")

	// A list-single shows its options; multi-valued fields end with an
	// empty line.
	_, errs, code = c.run("25\n", "--interactive", "run", "get-registered-users-list")
	if code != 0 || !strings.Contains(errs, "[25, 50, 75, 100, 150, 200, none]") {
		t.Fatalf("list options: %d %q", code, errs)
	}
	_, _, code = c.run("alice@localhost\nbob@localhost\n\n", "--interactive", "run", "edit-blacklist")
	if code != 0 {
		t.Fatal("edit-blacklist")
	}
	black, _ := srv.AccessLists()
	if strings.Join(black, " ") != "alice@localhost bob@localhost" {
		t.Fatalf("blacklist %v", black)
	}
}

func TestCertificateAndPassword(t *testing.T) {
	srv, c := setup(t)
	// Without --ca the self-signed certificate is refused...
	cmd := exec.Command(c.bin, "--jid", "root@localhost", "--server", c.addr, "list")
	cmd.Env = append(os.Environ(), "ADHOCCTL_PASSWORD=toor")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "certificate") {
		t.Fatalf("untrusted certificate accepted: %v %q", err, out)
	}
	// ...--insecure skips the check; the password can come from a file.
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("toor\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(c.bin, "--jid", "root@localhost", "--server", c.addr, "--insecure", "--password-file", pwFile, "run", "ping")
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "pong") {
		t.Fatalf("insecure with a password file: %v %q", err, out)
	}
	if n, _ := srv.Logins("root"); n != 1 {
		t.Fatalf("root logged in %d times, want 1 (the refused attempt must not count)", n)
	}
}
