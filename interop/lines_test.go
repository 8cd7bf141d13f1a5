package interop_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
)

// addAccounts adds an account on srv for each user name, whose password is
// prefix-name, and returns their bare JIDs in order and the flags of a
// script that logs in as all of them: serverArgs, then --<name>-jid and
// --<name>-password for each.
func addAccounts(t *testing.T, srv *servertest.Server, prefix string, names ...string) (jids, args []string) {
	t.Helper()
	args = serverArgs(t, srv)
	for _, name := range names {
		pw := prefix + "-" + name
		jid := srv.AddUser(name, pw)
		jids = append(jids, jid)
		args = append(args, "--"+name+"-jid", jid, "--"+name+"-password", pw)
	}
	return jids, args
}

// withDebug returns args with --debug added when the environment variable
// env is set, for the client library's log of a run on stderr.
func withDebug(args []string, env string) []string {
	if os.Getenv(env) != "" {
		return append(args, "--debug")
	}
	return args
}

// scanLines calls f with the first word and the rest of each line a
// script printed, in order, and reports whether one of them was OK.
func scanLines(lines []string, f func(word, rest string)) (ok bool) {
	for _, line := range lines {
		word, rest, _ := strings.Cut(line, " ")
		ok = ok || line == "OK"
		f(word, rest)
	}
	return ok
}

// byWord returns the rest of each line a script printed under the line's
// first word, in the order they came.
func byWord(lines []string) map[string][]string {
	got := map[string][]string{}
	scanLines(lines, func(word, rest string) { got[word] = append(got[word], rest) })
	return got
}

// cutJSON cuts rest, the "<label> <JSON>" after a line's first word, and
// decodes the JSON into a T; it fails the test, naming the line, when the
// JSON does not decode.
func cutJSON[T any](t *testing.T, word, rest string) (string, T) {
	t.Helper()
	label, js, _ := strings.Cut(rest, " ")
	var v T
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("%s %s: %v", word, rest, err)
	}
	return label, v
}
