package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clientRow is one row of README.md's table of the clients adhocd is
// tested with. Each capability names the tests of this package that prove
// it against the client as its users run it; a row's marks are derived
// from them, so the table says ✓ only where a test stands behind it, and
// that test runs (and must pass) in the same go test as this check.
type clientRow struct {
	client string
	// version reads the version installed here: the one tested.
	version                                   func() (string, error)
	logIn, listCommands, runForms, multiStage []string
	// groupChat are the tests in which the client joins a XEP-0045 room
	// of the server's group chat service and talks in it.
	groupChat []string
	notes     string
}

// clientMatrix is the source of README.md's client table.
var clientMatrix = []clientRow{
	{
		client:       "Gajim, the application, under Xvfb",
		version:      debianVersion("Gajim", "gajim"),
		logIn:        []string{"TestGajimListsAdminCommands"},
		listCommands: []string{"TestGajimListsAdminCommands"},
		notes:        "Accounts → Execute Command… on the server: the list Gajim shows equals the server's; a screenshot is kept",
	},
	{
		client:       "Gajim's library nbxmpp, driven as Gajim calls it",
		version:      debianVersion("nbxmpp", "python3-nbxmpp"),
		logIn:        []string{"TestNbxmppAdHoc"},
		listCommands: []string{"TestNbxmppAdHoc"},
		runForms:     []string{"TestNbxmppAdHoc"},
		multiStage:   []string{"TestNbxmppAdHoc"},
		groupChat:    []string{"TestNbxmppMUC", "TestNbxmppMUCAdmin"},
		notes:        "STARTTLS, SCRAM-SHA-256; the command list, add-user, a count, the three-stage wizard with prev, cancel",
	},
	{
		client:       "poezio",
		version:      debianVersion("poezio", "poezio"),
		logIn:        []string{"TestPoezioAdminCommands"},
		listCommands: []string{"TestPoezioAdminCommands"},
		runForms:     []string{"TestPoezioAdminCommands"},
		multiStage:   []string{"TestPoezioWizard"},
		notes:        "`/ad-hoc`, add-user and announce under tmux; poezio submits every stage with `next` (the last taken as `complete`) and has no way back (prev)",
	},
	{
		client:       "Profanity",
		version:      debianVersion("Profanity", "profanity"),
		logIn:        []string{"TestProfanity"},
		listCommands: []string{"TestProfanity"},
		runForms:     []string{"TestProfanity"},
		multiStage:   []string{"TestProfanityWizard"},
		groupChat:    []string{"TestProfanityMUC"},
		notes:        "`/cmd list`, `/cmd exec`, `/form submit` under tmux (`/form` has no prev); chat between two instances; message carbons enabled without an error",
	},
	{
		client:       "slixmpp (scripts and bots)",
		version:      debianVersion("slixmpp", "python3-slixmpp"),
		logIn:        []string{"TestSlixmppMessage", "TestSlixmppBotFailedAllAuth", "TestSlixmppBotFailedAuth"},
		listCommands: []string{"TestSlixmppRunsWizard"},
		runForms:     []string{"TestSlixmppAdminHelpers"},
		multiStage:   []string{"TestSlixmppRunsWizard"},
		groupChat:    []string{"TestSlixmppMUC", "TestSlixmppMUCFeatures", "TestSlixmppMUCAdmin"},
		notes:        "TLS 1.2 and 1.3; bots: handle `failed_all_auth`, or set `c2s.channel_binding: false`; offline messages with XEP-0203 delay",
	},
	{
		client:       "Converse.js in headless Chromium, over WebSocket",
		version:      npmVersion("Converse.js", "converse.js"),
		logIn:        []string{"TestConverse"},
		listCommands: []string{"TestConverse"},
		runForms:     []string{"TestConverse"},
		multiStage:   []string{"TestConverse"},
		groupChat:    []string{"TestConverseMUC"},
		notes:        "its Commands view on the server JID: a one-stage command, add-user, the wizard with Previous (Converse leaves the last stage's text in a reused text box); a message to a TCP client",
	},
	{
		client:       "xmpp.js from Node, over TCP and WebSocket",
		version:      npmVersion("xmpp.js", "@xmpp/client"),
		logIn:        []string{"TestXmppjs", "TestXmppjsWebSocket"},
		listCommands: []string{"TestXmppjs", "TestXmppjsWebSocket"},
		runForms:     []string{"TestXmppjs", "TestXmppjsWebSocket"},
		multiStage:   []string{"TestXmppjs", "TestXmppjsWebSocket"},
		notes:        "raw XEP-0050 IQs: the command list, get-online-users-num, add-user, the wizard with prev; messages to a TCP client",
	},
}

// debianVersion reads the upstream version of a Debian package.
func debianVersion(name, pkg string) func() (string, error) {
	return func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
		if err != nil {
			return "", fmt.Errorf("dpkg-query %s: %w", pkg, err)
		}
		v := string(out)
		if _, after, ok := strings.Cut(v, ":"); ok {
			v = after // epoch
		}
		v, _, _ = strings.Cut(v, "-") // Debian revision
		v, _, _ = strings.Cut(v, "+") // repacking
		return name + " " + v, nil
	}
}

// npmVersion reads the version of an npm package installed in interop/js.
func npmVersion(name, pkg string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(filepath.Join("js", "node_modules", pkg, "package.json"))
		if err != nil {
			return "", err
		}
		var p struct{ Version string }
		if err := json.Unmarshal(b, &p); err != nil {
			return "", fmt.Errorf("%s package.json: %w", pkg, err)
		}
		return name + " " + p.Version, nil
	}
}

const (
	matrixBegin = "<!-- client matrix: generated from interop/matrix_test.go, checked by TestREADMEClientMatrix -->"
	matrixEnd   = "<!-- end of client matrix -->"
)

// TestREADMEClientMatrix checks README.md's client table against
// clientMatrix: every row and mark, and the version column against the
// clients installed here (those the other tests of this run drive). Every
// test a mark names must exist in this package. With UPDATE_MATRIX=1 in the
// environment the table is written into README.md instead.
func TestREADMEClientMatrix(t *testing.T) {
	defined := testFuncs(t)
	var b strings.Builder
	b.WriteString("| client | version tested | log in | list commands | run forms | multi-stage | group chat | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	var missing []string
	for _, r := range clientMatrix {
		v, err := r.version()
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", r.client, err))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", r.client, v)
		for _, tests := range [][]string{r.logIn, r.listCommands, r.runForms, r.multiStage, r.groupChat} {
			for _, name := range tests {
				if !defined[name] {
					t.Errorf("%s: the matrix names %s, which is not a test of this package", r.client, name)
				}
			}
			mark := " – |"
			if len(tests) > 0 {
				mark = " ✓ |"
			}
			b.WriteString(mark)
		}
		fmt.Fprintf(&b, " %s |\n", r.notes)
	}
	if len(missing) > 0 {
		msg := "clients not installed, so their tested version is unknown: " + strings.Join(missing, "; ")
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(readme), matrixBegin+"\n")
	_, after, ok2 := strings.Cut(rest, matrixEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md has no client matrix between %q and %q", matrixBegin, matrixEnd)
	}
	table := b.String()
	if os.Getenv("UPDATE_MATRIX") != "" {
		if err := os.WriteFile(filepath.Join("..", "README.md"), []byte(before+matrixBegin+"\n"+table+matrixEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := strings.SplitN(rest, matrixEnd, 2)[0]; got != table {
		t.Errorf("README.md's client matrix is not what the tests prove; run UPDATE_MATRIX=1 go test -run TestREADMEClientMatrix ./interop/\nREADME:\n%s\nwant:\n%s", got, table)
	}
}

// testFuncs lists the Test functions declared in this package's files.
func testFuncs(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") {
				out[fd.Name.Name] = true
			}
		}
	}
	return out
}
