package image_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// This file reads a Dockerfile as a builder does, for the subset of the
// format adhocd's Dockerfile uses: line continuations, comments, global and
// stage ARGs with build-arg overrides, ${VAR} expansion, JSON (exec) forms,
// and RUN lines made of simple commands joined by &&.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, COPY, RUN...
	args string // the rest of the line, not yet expanded
	line int
}

func (in instruction) String() string { return fmt.Sprintf("line %d: %s %s", in.line, in.cmd, in.args) }

// stage is one FROM and the instructions under it.
type stage struct {
	name  string
	from  string // the base image, ARGs expanded
	instr []instruction
	// vars are the ARG and ENV values in force, for expansion.
	vars map[string]string
	// global are the ARGs before the first FROM: a stage sees one only
	// when it declares it again.
	global map[string]string
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	stages []*stage
}

// parseDockerfile reads the file at p with the build args given (as
// --build-arg would) and resolves each stage's FROM.
func parseDockerfile(p string, buildArgs map[string]string) (*dockerfile, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		instrs []instruction
		cur    strings.Builder
		start  int
		n      int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue // comments are dropped, inside continuations too
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		word, rest, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, instruction{cmd: strings.ToUpper(word), args: strings.TrimSpace(rest), line: start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: ends inside a continued line", p)
	}

	df := &dockerfile{}
	global := map[string]string{}
	var st *stage
	for _, in := range instrs {
		switch {
		case in.cmd == "ARG" && st == nil:
			k, v, err := parseArg(in, global, buildArgs)
			if err != nil {
				return nil, err
			}
			global[k] = v
		case in.cmd == "FROM":
			words, err := shellWords(in.args, global)
			if err != nil {
				return nil, fmt.Errorf("%v: %w", in, err)
			}
			st = &stage{from: words[0], vars: map[string]string{}, global: maps.Clone(global)}
			if len(words) == 3 && strings.EqualFold(words[1], "AS") {
				st.name = words[2]
			} else if len(words) != 1 {
				return nil, fmt.Errorf("%v: want FROM IMAGE [AS NAME]", in)
			}
			df.stages = append(df.stages, st)
		case st == nil:
			return nil, fmt.Errorf("%v: before the first FROM", in)
		default:
			st.instr = append(st.instr, in)
		}
	}
	if len(df.stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", p)
	}
	return df, nil
}

// parseArg reads ARG NAME[=DEFAULT]; a build arg overrides the default.
func parseArg(in instruction, vars, buildArgs map[string]string) (string, string, error) {
	words, err := shellWords(in.args, vars)
	if err != nil || len(words) != 1 {
		return "", "", fmt.Errorf("%v: want ARG NAME[=DEFAULT] (%v)", in, err)
	}
	k, v, _ := strings.Cut(words[0], "=")
	if b, ok := buildArgs[k]; ok {
		v = b
	}
	return k, v, nil
}

// stageNamed returns the stage called name.
func (df *dockerfile) stageNamed(name string) *stage {
	for _, s := range df.stages {
		if s.name == name {
			return s
		}
	}
	return nil
}

// final is the stage the image is made of.
func (df *dockerfile) final() *stage { return df.stages[len(df.stages)-1] }

// declareArg handles an ARG inside a stage: it takes the build arg, else
// the global value, else the default.
func (s *stage) declareArg(in instruction, buildArgs map[string]string) error {
	words, err := shellWords(in.args, s.vars)
	if err != nil || len(words) != 1 {
		return fmt.Errorf("%v: want ARG NAME[=DEFAULT] (%v)", in, err)
	}
	k, v, hasDefault := strings.Cut(words[0], "=")
	if g, ok := s.global[k]; ok && !hasDefault {
		v = g
	}
	if b, ok := buildArgs[k]; ok {
		v = b
	}
	s.vars[k] = v
	return nil
}

// env returns the stage's variables as NAME=value (the ARGs and ENVs
// declared so far), for the commands a RUN line starts.
func (s *stage) env() []string {
	var env []string
	for k, v := range s.vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// words expands and splits an instruction's arguments.
func (s *stage) words(in instruction) ([]string, error) {
	w, err := shellWords(in.args, s.vars)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", in, err)
	}
	return w, nil
}

// execForm decodes the JSON array form of ENTRYPOINT, CMD, VOLUME and
// HEALTHCHECK CMD. The shell form is refused: the distroless base has no
// shell to run it.
func execForm(in instruction, args string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil || len(v) == 0 {
		return nil, fmt.Errorf("%v: want the exec form [\"...\"] (the base image has no shell): %v", in, err)
	}
	return v, nil
}

// copyArgs are the parts of a COPY instruction.
type copyArgs struct {
	from  string // stage name; empty: the build context
	chown string // uid:gid; empty: root
	srcs  []string
	dst   string
}

func (s *stage) parseCopy(in instruction) (copyArgs, error) {
	words, err := s.words(in)
	if err != nil {
		return copyArgs{}, err
	}
	var c copyArgs
	for len(words) > 0 && strings.HasPrefix(words[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(words[0], "--"), "=")
		switch k {
		case "from":
			c.from = v
		case "chown":
			c.chown = v
		default:
			return copyArgs{}, fmt.Errorf("%v: the test does not know COPY --%s", in, k)
		}
		words = words[1:]
	}
	if len(words) < 2 {
		return copyArgs{}, fmt.Errorf("%v: want COPY SRC... DEST", in)
	}
	c.srcs, c.dst = words[:len(words)-1], words[len(words)-1]
	return c, nil
}

// shellWords splits s into words as a POSIX shell would for the simple
// commands a Dockerfile holds: single and double quotes, backslash escapes,
// $NAME and ${NAME} expanded from vars (an unknown name is an error, not an
// empty string, to catch typos), and the && operator returned as a word of
// its own. Other operators (;, |, >, ||) are refused.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	expand := func(i int) (int, error) { // s[i] == '$'
		j := i + 1
		var name string
		if j < len(s) && s[j] == '{' {
			end := strings.IndexByte(s[j:], '}')
			if end < 0 {
				return 0, fmt.Errorf("unterminated ${ in %q", s)
			}
			name, j = s[j+1:j+end], j+end+1
		} else {
			for j < len(s) && (s[j] == '_' || 'a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z' || '0' <= s[j] && s[j] <= '9') {
				j++
			}
			name = s[i+1 : j]
		}
		if name == "" {
			cur.WriteByte('$')
			return i + 1, nil
		}
		v, ok := vars[name]
		if !ok {
			return 0, fmt.Errorf("$%s is not declared (ARG or ENV)", name)
		}
		cur.WriteString(v)
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated \" in %q", s)
				}
				if s[i] == '"' {
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0 {
					cur.WriteByte(s[i+1])
					i += 2
					continue
				}
				if s[i] == '$' {
					var err error
					if i, err = expand(i); err != nil {
						return nil, err
					}
					continue
				}
				cur.WriteByte(s[i])
				i++
			}
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			inWord = true
			i += 2
		case c == '$':
			inWord = true
			var err error
			if i, err = expand(i); err != nil {
				return nil, err
			}
		case strings.HasPrefix(s[i:], "&&"):
			flush()
			words = append(words, "&&")
			i += 2
		case strings.IndexByte(";|&<>`()", c) >= 0:
			return nil, fmt.Errorf("shell operator %q in %q: the test runs only commands joined by &&", c, s)
		default:
			cur.WriteByte(c)
			inWord = true
			i++
		}
	}
	flush()
	return words, nil
}

// ignored reports whether .dockerignore's patterns keep rel (a path in
// the build context, slash-separated) out of the context: rel or one of
// its parent folders matches a pattern. Exceptions (!) are not supported.
func ignored(patterns []string, rel string) bool {
	rel = path.Clean(strings.TrimPrefix(rel, "./"))
	for p := rel; p != "." && p != "/"; p = path.Dir(p) {
		for _, pat := range patterns {
			if sub, ok := strings.CutPrefix(pat, "**/"); ok {
				if m, _ := path.Match(sub, path.Base(p)); m {
					return true
				}
				continue
			}
			if m, _ := path.Match(pat, p); m {
				return true
			}
		}
	}
	return false
}

// dockerignore reads the patterns of the .dockerignore at p.
func dockerignore(t *testing.T, p string) []string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf("%s: exception %q: the test does not support them", p, line)
		}
		pats = append(pats, strings.Trim(filepath.ToSlash(line), "/"))
	}
	return pats
}

func TestShellWords(t *testing.T) {
	vars := map[string]string{"VERSION": "v1.2.3", "EMPTY": ""}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`CGO_ENABLED=0 go build -ldflags="-s -w -X p.version=${VERSION}" -o /out/x ./cmd/x`,
			[]string{"CGO_ENABLED=0", "go", "build", "-ldflags=-s -w -X p.version=v1.2.3", "-o", "/out/x", "./cmd/x"}},
		{`a && b 'c $VERSION' "$EMPTY"`, []string{"a", "&&", "b", "c $VERSION", ""}},
		{`org.x="a b" k=$VERSION`, []string{"org.x=a b", "k=v1.2.3"}},
		{`"(devel)"`, []string{"(devel)"}},
	} {
		got, err := shellWords(tc.in, vars)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a; b`, `a | b`, `$UNDECLARED`, `"open`} {
		if got, err := shellWords(bad, vars); err == nil {
			t.Errorf("shellWords(%q) = %q, want an error", bad, got)
		}
	}
}

func TestIgnored(t *testing.T) {
	pats := []string{".git", "data", ".ci/artifacts", "**/*.test"}
	for rel, want := range map[string]bool{
		"data":                   true,
		"data/adhocd.db":         true,
		".git/HEAD":              true,
		"image/config.yaml":      false,
		"cmd/adhocd/adhocd.test": true,
		".ci/artifacts/x.png":    true,
		".ci/run":                false,
		"storage/data.go":        false,
	} {
		if got := ignored(pats, rel); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
}
