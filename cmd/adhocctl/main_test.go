package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
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
	// list JID is list --to JID.
	out, errs, code = c.run("", "list", "localhost")
	if code != 0 || !strings.Contains(out, "http://jabber.org/protocol/admin#add-user") {
		t.Fatalf("list localhost: %d %q %q", code, out, errs)
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

// addContact does what juliet's XMPP client does when she logs in and adds
// a contact: a roster get and her presence, a roster set (RFC 6121 §2.3) with a name and a group, then a subscription
// request (RFC 6121 §3.1), after which the server pushes the item with
// ask='subscribe'. The client stays online until the test ends.
func addContact(t *testing.T, srv *servertest.Server, user, password, contact, name, group string) {
	t.Helper()
	c := srv.Dial(user, password, "")
	ctx := servertest.Context(t, 10*time.Second)
	// At login a client fetches its roster (which makes it a resource that
	// gets roster pushes, RFC 6121 §2.1.6) and sends its presence.
	if _, err := c.IQ(ctx, `<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>`); err != nil {
		t.Fatal(err)
	}
	if err := c.SendRaw(ctx, `<presence/>`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IQ(ctx, `<iq type='set' id='add1'><query xmlns='jabber:iq:roster'><item jid='`+contact+`' name='`+name+`'><group>`+group+`</group></item></query></iq>`); err != nil {
		t.Fatal(err)
	}
	if err := c.SendRaw(ctx, `<presence type='subscribe' to='`+contact+`'/>`); err != nil {
		t.Fatal(err)
	}
	c.Next(10*time.Second, func(s servertest.Stanza) bool {
		return s.Name == "iq" && strings.Contains(s.XML, `ask="subscribe"`)
	})
}

// TestRosterTablesAndJSON checks that adhocctl prints every payload a
// command returns: get-user-roster's roster queries embedded in its result
// forms (one per account), a multi-item result as a table, and all of it
// again in --json.
func TestRosterTablesAndJSON(t *testing.T) {
	srv, c := setup(t)
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	srv.AddUser("carol", "c4r0l")
	addContact(t, srv, "alice", "wonderland", "bob@localhost", "Bob", "Friends")

	out, errs, code := c.run("", "run", "get-user-roster", "--field", "accountjids=alice@localhost", "--field", "accountjids=carol@localhost")
	want := strings.Join([]string{
		"accountjids: alice@localhost",
		"roster:",
		"  JID            Name  Subscription  Ask        Groups",
		"  bob@localhost  Bob   none          subscribe  Friends",
		"accountjids: carol@localhost",
		"roster: empty",
	}, "\n") + "\n"
	if code != 0 || out != want {
		t.Fatalf("get-user-roster: exit %d, stderr %q, printed\n%s\nwant\n%s", code, errs, out, want)
	}

	out, _, code = c.run("", "--json", "run", "get-user-roster", "--field", "accountjids=alice@localhost", "--field", "accountjids=carol@localhost")
	type item struct {
		JID, Name, Subscription, Ask string
		Groups                       []string
	}
	var res struct {
		Status string
		Notes  []struct{ Type, Text string }
		Forms  []struct {
			Fields []struct {
				Var    string
				Values []string
			}
			Roster   *[]item
			Payloads []struct{ XML string }
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Status != "completed" || len(res.Forms) != 2 {
		t.Fatalf("get-user-roster --json: %d %q", code, out)
	}
	alice, carol := res.Forms[0], res.Forms[1]
	if alice.Roster == nil || len(*alice.Roster) != 1 || len(alice.Payloads) != 0 {
		t.Fatalf("alice's form in JSON: %q", out)
	}
	if got := (*alice.Roster)[0]; got.JID != "bob@localhost" || got.Name != "Bob" || got.Subscription != "none" || got.Ask != "subscribe" || len(got.Groups) != 1 || got.Groups[0] != "Friends" {
		t.Fatalf("alice's roster item in JSON: %+v", got)
	}
	if carol.Roster == nil || len(*carol.Roster) != 0 || carol.Fields[len(carol.Fields)-1].Values[0] != "carol@localhost" {
		t.Fatalf("carol's empty roster in JSON: %q", out)
	}

	// A multi-item result (<reported/> and <item/>) is a table whose
	// columns are the reported fields' labels; sessions sorts by JID:
	// alice's client, then adhocctl's own session as root.
	out, _, code = c.run("", "run", "sessions")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 5 || lines[0] != "info: 2 sessions" || lines[1] != "Connected sessions" {
		t.Fatalf("sessions: %d\n%s", code, out)
	}
	header := strings.Fields(lines[2])
	if strings.Join(header, " ") != "JID Resource Client address Connected since Idle (seconds) Available" {
		t.Fatalf("sessions header %q", lines[2])
	}
	col := strings.Index(lines[2], "Resource")
	for i, who := range []string{"alice@localhost", "root@localhost"} {
		row := lines[3+i]
		if !strings.HasPrefix(row, who+" ") || row[col-1] != ' ' || row[col] == ' ' || strings.HasSuffix(row, " ") {
			t.Fatalf("sessions row %d %q is not aligned under %q", i, row, lines[2])
		}
		if !strings.Contains(row, "127.0.0.1:") {
			t.Fatalf("sessions row %q has no client address", row)
		}
	}

	out, _, code = c.run("", "--json", "run", "sessions")
	var tab struct {
		Notes []struct{ Type, Text string }
		Forms []struct {
			Reported []struct{ Var, Label string }
			Items    []struct {
				Fields []struct {
					Var    string
					Values []string
				}
			}
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &tab) != nil || len(tab.Notes) != 1 || tab.Notes[0].Text != "2 sessions" ||
		len(tab.Forms) != 1 || len(tab.Forms[0].Reported) != 6 || tab.Forms[0].Reported[2].Label != "Client address" || len(tab.Forms[0].Items) != 2 {
		t.Fatalf("sessions --json: %d %q", code, out)
	}
	if f := tab.Forms[0].Items[0].Fields[0]; f.Var != "jid" || f.Values[0] != "alice@localhost" {
		t.Fatalf("sessions --json first item %+v", f)
	}
}

// TestHelp checks that --help (and help, and run NODE --help) shows the
// commands with their arguments and flags, and that wrong usage says how
// to use it and exits 2.
func TestHelp(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "adhocctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	exe := func(args ...string) (string, string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), errb.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), 0
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--jid", "a@b", "run", "add-user", "--help"}} {
		out, errs, code := exe(args...)
		if code != 0 || errs != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		for _, want := range []string{
			"  adhocctl [flags] list [JID]\n",
			"  adhocctl [flags] run NODE|SHORTNAME [--field var=value]...\n",
			"  list [JID]   list the commands of JID",
			"  --field var=value ",
			"  --jid JID ",
			"  --json ",
			"  --password-file FILE ",
			"  --server host:port ",
			"  --ca FILE ",
			"  --insecure ",
			"  --to JID ",
			"status, sessions, s2s, reload and ping",
			"ADHOCCTL_PASSWORD",
			"ADHOCCTL_SERVER",
			"Exit status: 0",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help without %q:\n%s", args, want, out)
			}
		}
	}
	for _, args := range [][]string{{}, {"--jid", "a@b"}, {"list"}, {"--jid", "a@b", "frobnicate"}, {"--nope"}, {"--jid", "a@b", "run"}, {"--jid", "a@b", "run", "ping", "extra"}} {
		out, errs, code := exe(args...)
		if code != 2 || out != "" || !strings.HasPrefix(errs, "adhocctl: ") || !strings.Contains(errs, "adhocctl [flags] run NODE|SHORTNAME") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// transcriptSection is the README paragraph whose first code block
// TestREADMETranscript runs.
const transcriptSection = "**From a terminal, with adhocctl.**"

// clientSteps are the transcript's "$ # …" lines: what a person does in an
// XMPP client between two commands, done here by a real client over TCP.
var clientSteps = map[string]func(t *testing.T, srv *servertest.Server){
	`# juliet logs in from her client, adds romeo@localhost as "Romeo" in the group Friends and asks to see his presence`: func(t *testing.T, srv *servertest.Server) {
		addContact(t, srv, "juliet", "R0m30", "romeo@localhost", "Romeo", "Friends")
	},
}

// TestREADMETranscript runs the adhocctl transcript of README.md, line by
// line, and checks that each command prints exactly the lines the README
// shows after it, so that the README cannot drift from the program. The
// transcript is run as a person on a fresh clone would, with the server
// running on the repository's config.yaml; what differs, and only that:
//
//   - the server is this test's (servertest, on the repository's
//     config.yaml but listening on 127.0.0.1:0, its storage folder data/ in
//     a scratch folder that stands for the clone: the commands run there, so
//     data/selfsigned-cert.pem is its certificate), and ADHOCCTL_SERVER is
//     set to its address (the transcript leaves --server to its default,
//     the JID's domain on port 5222);
//   - `go install` runs in the repository with GOBIN set to a folder at the
//     head of PATH (as $(go env GOPATH)/bin is on a developer's PATH), and
//     `go run ./cmd/adhocd` is an adhocd built from this tree;
//   - `export NAME=VALUE` sets the variable for the lines after it, and
//     `# …` lines are client steps (clientSteps), done with a real client.
//
// Every other line runs with sh -c, standard output and error together,
// and must exit 0 (a failing command shows its status with `; echo`).
func TestREADMETranscript(t *testing.T) {
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps := transcript(t, string(readme))

	clone := t.TempDir()
	bin := filepath.Join(t.TempDir(), "bin")
	adhocd := filepath.Join(t.TempDir(), "adhocd")
	build := exec.Command("go", "build", "-o", adhocd, "./cmd/adhocd")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build adhocd: %v\n%s", err, out)
	}
	cfgYAML, err := os.ReadFile(filepath.Join(repo, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(clone, "config.yaml"), cfgYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(clone, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The README's commands run on the embedded default (config.yaml's
	// bbolt store): so does its server, whatever backend the suite runs on.
	t.Setenv(servertest.BackendEnv, "")
	// Loopback port 0 and no other listener, whatever config.yaml says.
	cfg.C2S.Listen = "127.0.0.1:0"
	cfg.Metrics.Listen, cfg.Debug.PprofListen, cfg.S2S.Listen = "", "", ""
	cfg.Log.Level = "warn"
	srv := servertest.StartConfig(t, cfg)

	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ADHOCCTL_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "GOBIN=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "GOBIN="+bin, "ADHOCCTL_SERVER="+srv.Addr)
	export := regexp.MustCompile(`^export ([A-Za-z_][A-Za-z0-9_]*)=([^\s'"$;|&]*)$`)
	for _, st := range steps {
		if strings.HasPrefix(st.line, "#") {
			do, ok := clientSteps[st.line]
			if !ok {
				t.Fatalf("README: %q is no client step this test knows (see clientSteps)", st.line)
			}
			do(t, srv)
			continue
		}
		if m := export.FindStringSubmatch(st.line); m != nil {
			env = append(env, m[1]+"="+m[2])
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		line := strings.ReplaceAll(st.line, "go run ./cmd/adhocd", shellQuote(adhocd))
		cmd := exec.CommandContext(ctx, "sh", "-c", line)
		cmd.Dir = clone
		if strings.HasPrefix(line, "go install ") {
			cmd.Dir = repo
		}
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("README: $ %s\nfailed: %v\n%s", st.line, err, out)
		}
		if got := string(out); got != st.output {
			t.Errorf("README: $ %s\nprinted:\n%s\nthe README shows:\n%s", st.line, got, st.output)
		}
	}
}

// step is one "$ " line of the transcript and the output shown under it.
type step struct{ line, output string }

// transcript returns the steps of the first code block of the adhocctl
// paragraph of the README that starts with a "$ " line.
func transcript(t *testing.T, readme string) []step {
	t.Helper()
	_, section, ok := strings.Cut(readme, transcriptSection)
	if !ok {
		t.Fatalf("README.md has no %q", transcriptSection)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var block string
	for {
		var b string
		_, rest, ok := strings.Cut(section, "\n```\n")
		if ok {
			b, section, ok = strings.Cut(rest, "\n```\n")
		}
		if !ok {
			t.Fatal("README.md: no code block of $ lines in the adhocctl paragraph")
		}
		if strings.HasPrefix(b, "$ ") {
			block = b
			break
		}
	}
	var steps []step
	for l := range strings.Lines(block + "\n") {
		if cmd, ok := strings.CutPrefix(l, "$ "); ok {
			steps = append(steps, step{line: strings.TrimSuffix(cmd, "\n")})
			continue
		}
		steps[len(steps)-1].output += l
	}
	return steps
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
