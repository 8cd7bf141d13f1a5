package image_test

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// This file builds the image's root filesystem from the Dockerfile, as a
// builder would, into a temporary folder.

// repo is the repository's root: the build context of `docker build .`.
const repo = ".."

// image is the final stage built: its root filesystem and its config.
type image struct {
	root        string
	uid, gid    uint32
	workdir     string
	env         []string
	entrypoint  []string
	cmd         []string
	healthcheck []string
	exposed     []string
	volumes     []string
	labels      map[string]string
}

// builder runs a Dockerfile's stages. A stage's file system lives under
// work/<stage>, except its WORKDIR, which is the repository itself: the
// build stage copies the context there (COPY . .), and the test builds
// from the checkout in place after checking that .dockerignore keeps
// nothing the build needs.
type builder struct {
	t         *testing.T
	df        *dockerfile
	buildArgs map[string]string
	work      string
	ignore    []string
	built     map[string]*builtStage
}

type builtStage struct {
	root    string // where the stage's file system is
	workdir string // its WORKDIR, which maps to the repository
}

// path maps an absolute path in the stage to the test's file system.
func (s *builtStage) path(p string) string {
	p = path.Clean(p)
	if p == s.workdir || strings.HasPrefix(p, s.workdir+"/") {
		return filepath.Join(repo, strings.TrimPrefix(p, s.workdir))
	}
	return filepath.Join(s.root, filepath.FromSlash(p))
}

func newBuilder(t *testing.T, buildArgs map[string]string) *builder {
	t.Helper()
	df, err := parseDockerfile(filepath.Join(repo, "Dockerfile"), buildArgs)
	if err != nil {
		t.Fatal(err)
	}
	return &builder{t: t, df: df, buildArgs: buildArgs, work: t.TempDir(),
		ignore: dockerignore(t, filepath.Join(repo, ".dockerignore")), built: map[string]*builtStage{}}
}

// stage builds the stage called name once and returns it.
func (b *builder) stage(name string) *builtStage {
	t := b.t
	t.Helper()
	if bs, ok := b.built[name]; ok {
		return bs
	}
	st := b.df.stageNamed(name)
	if st == nil {
		t.Fatalf("Dockerfile: no stage named %q", name)
	}
	checkGoImage(t, st.from)
	bs := &builtStage{root: filepath.Join(b.work, name), workdir: "/"}
	var pkgs []string
	for _, in := range st.instr {
		switch in.cmd {
		case "ARG":
			if err := st.declareArg(in, b.buildArgs); err != nil {
				t.Fatal(err)
			}
		case "ENV":
			b.setEnv(st, in, nil)
		case "WORKDIR":
			w := b.words(st, in)
			bs.workdir = resolve(bs.workdir, w[0])
		case "COPY":
			c, err := st.parseCopy(in)
			if err != nil {
				t.Fatal(err)
			}
			dst := resolve(bs.workdir, c.dst)
			if c.from != "" || !(dst == bs.workdir || strings.HasPrefix(dst, bs.workdir+"/")) || bs.workdir == "/" {
				t.Fatalf("%v: the test builds the %s stage from the checkout in place, so it knows only COPY of the context into WORKDIR", in, name)
			}
		case "RUN":
			pkgs = append(pkgs, b.run(st, bs, in)...)
		default:
			t.Fatalf("%v: the test does not know %s in a build stage", in, in.cmd)
		}
	}
	b.checkContext(pkgs)
	b.built[name] = bs
	return bs
}

// checkGoImage checks that the build stage's image is named by a full Go
// version, at least the one go.mod asks for.
func checkGoImage(t *testing.T, from string) {
	t.Helper()
	m := regexp.MustCompile(`^golang:(\d+\.\d+\.\d+)(-[a-z0-9]+)?(@sha256:[0-9a-f]{64})?$`).FindStringSubmatch(from)
	if m == nil {
		t.Fatalf("build stage FROM %s: want golang:X.Y.Z[-variant][@sha256:…], a full version", from)
	}
	b, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+(\.\d+)*)\s*$`).FindSubmatch(b)
	if goLine == nil {
		t.Fatal("go.mod: no go line")
	}
	if versionLess(m[1], string(goLine[1])) {
		t.Errorf("build stage FROM %s: Go %s is older than go.mod's go %s", from, m[1], goLine[1])
	}
}

// versionLess compares dotted numeric versions.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func (b *builder) words(st *stage, in instruction) []string {
	b.t.Helper()
	w, err := st.words(in)
	if err != nil {
		b.t.Fatal(err)
	}
	if len(w) == 0 {
		b.t.Fatalf("%v: no arguments", in)
	}
	return w
}

// setEnv handles ENV NAME=value...; img, when set, gets them too.
func (b *builder) setEnv(st *stage, in instruction, img *image) {
	for _, w := range b.words(st, in) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			b.t.Fatalf("%v: want ENV NAME=value...", in)
		}
		st.vars[k] = v
		if img != nil {
			img.env = setenv(img.env, k, v)
		}
	}
}

func setenv(env []string, k, v string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// run runs a RUN line of a build stage: simple commands joined by &&, each
// a go command or mkdir -p, with the stage's paths mapped. It returns the
// ./relative package patterns the go commands named.
func (b *builder) run(st *stage, bs *builtStage, in instruction) []string {
	t := b.t
	t.Helper()
	if strings.HasPrefix(in.args, "[") {
		t.Fatalf("%v: the test runs only the shell form of RUN", in)
	}
	var pkgs []string
	words := b.words(st, in)
	for len(words) > 0 {
		argv := words
		if i := indexOf(words, "&&"); i >= 0 {
			argv, words = words[:i], words[i+1:]
		} else {
			words = nil
		}
		var env []string
		for len(argv) > 0 && assignment.MatchString(argv[0]) {
			env, argv = append(env, argv[0]), argv[1:]
		}
		if len(argv) == 0 {
			t.Fatalf("%v: empty command", in)
		}
		for i, a := range argv {
			if strings.HasPrefix(a, "/") {
				argv[i] = bs.path(a)
			}
		}
		switch argv[0] {
		case "go":
			for _, a := range argv[2:] {
				if strings.HasPrefix(a, "./") {
					pkgs = append(pkgs, a)
				}
			}
			start := time.Now()
			cmd := exec.Command("go", argv[1:]...)
			cmd.Dir = bs.path(bs.workdir)
			cmd.Env = append(append(os.Environ(), st.env()...), env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s %s: %v\n%s", in, strings.Join(env, " "), strings.Join(argv, " "), err, out)
			}
			t.Logf("build: %s (%v)", strings.Join(append(env, argv...), " "), time.Since(start).Round(time.Millisecond))
		case "mkdir":
			if len(argv) < 3 || argv[1] != "-p" {
				t.Fatalf("%v: the test knows only mkdir -p DIR...", in)
			}
			for _, d := range argv[2:] {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		default:
			t.Fatalf("%v: the test does not know the command %q: teach it, or make the step a go command", in, argv[0])
		}
	}
	return pkgs
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// checkContext checks that .dockerignore keeps none of what the build
// stage used out of the build context: go.mod, go.sum and the folders of
// every package of this module the go commands built.
func (b *builder) checkContext(pkgs []string) {
	t := b.t
	t.Helper()
	need := []string{"go.mod", "go.sum"}
	if len(pkgs) > 0 {
		cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}"}, pkgs...)...)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %v: %v", pkgs, err)
		}
		abs, err := filepath.Abs(repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range strings.Fields(string(out)) {
			rel, err := filepath.Rel(abs, d)
			if err != nil {
				t.Fatal(err)
			}
			need = append(need, filepath.ToSlash(rel))
		}
	}
	for _, p := range need {
		if ignored(b.ignore, p) {
			t.Errorf(".dockerignore keeps %s out of the build context, and the build needs it", p)
		}
	}
}

// distroless is what the final stage's base image provides that adhocd
// uses, rebuilt in the tree: the CA bundle (copied from this machine),
// the users and groups, /tmp, the nonroot home and the environment.
func distroless(t *testing.T, img *image) {
	t.Helper()
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
		"etc/group":  "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("this machine's CA bundle, copied into the tree as distroless has it: %v", err)
	}
	files["etc/ssl/certs/ca-certificates.crt"] = string(ca)
	for name, content := range files {
		p := filepath.Join(img.root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct {
		name string
		mode fs.FileMode
		uid  int
	}{{"tmp", 0o777 | fs.ModeSticky, 0}, {"home/nonroot", 0o700, 65532}, {"root", 0o700, 0}} {
		p := filepath.Join(img.root, d.name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, d.uid, d.uid); err != nil {
			t.Fatal(err)
		}
	}
	// The folder is the root of the tree: everyone must traverse it.
	if err := os.Chmod(img.root, 0o755); err != nil {
		t.Fatal(err)
	}
	img.env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
}

// final builds the final stage into a tree and returns the image.
func (b *builder) final() *image {
	t := b.t
	t.Helper()
	st := b.df.final()
	if !strings.HasPrefix(st.from, "gcr.io/distroless/static") {
		t.Fatalf("final stage FROM %s: the test provides only what gcr.io/distroless/static has; teach it the new base", st.from)
	}
	img := &image{root: filepath.Join(b.work, "rootfs"), workdir: "/", labels: map[string]string{}}
	distroless(t, img)
	user := ""
	for _, in := range st.instr {
		switch in.cmd {
		case "ARG":
			if err := st.declareArg(in, b.buildArgs); err != nil {
				t.Fatal(err)
			}
		case "LABEL":
			for _, w := range b.words(st, in) {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					t.Fatalf("%v: want LABEL key=value...", in)
				}
				img.labels[k] = v
			}
		case "ENV":
			b.setEnv(st, in, img)
		case "COPY":
			b.copy(st, in, img)
		case "VOLUME":
			if strings.HasPrefix(in.args, "[") {
				v, err := execForm(in, in.args)
				if err != nil {
					t.Fatal(err)
				}
				img.volumes = append(img.volumes, v...)
			} else {
				img.volumes = append(img.volumes, b.words(st, in)...)
			}
		case "USER":
			user = b.words(st, in)[0]
		case "WORKDIR":
			img.workdir = resolve(img.workdir, b.words(st, in)[0])
		case "EXPOSE":
			img.exposed = append(img.exposed, b.words(st, in)...)
		case "HEALTHCHECK":
			img.healthcheck = healthcheck(t, in)
		case "ENTRYPOINT":
			v, err := execForm(in, in.args)
			if err != nil {
				t.Fatal(err)
			}
			img.entrypoint = v
		case "CMD":
			v, err := execForm(in, in.args)
			if err != nil {
				t.Fatal(err)
			}
			img.cmd = v
		default:
			t.Fatalf("%v: the test does not know %s in the final stage (the base has no shell for RUN)", in, in.cmd)
		}
	}
	uid, gid, err := numericUser(user)
	if err != nil {
		t.Fatalf("USER %q: %v", user, err)
	}
	img.uid, img.gid = uid, gid
	// The engine creates WORKDIR and missing volume folders, owned by root.
	for _, d := range append([]string{img.workdir}, img.volumes...) {
		if err := os.MkdirAll(img.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img.env = setenv(img.env, "HOME", "/home/nonroot")
	return img
}

// numericUser parses USER uid:gid; a name would need the image's passwd
// and would keep Kubernetes' runAsNonRoot from checking it.
func numericUser(user string) (uint32, uint32, error) {
	u, g, ok := strings.Cut(user, ":")
	if !ok {
		return 0, 0, fmt.Errorf("want numeric uid:gid")
	}
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("want numeric uid:gid: %w", err)
	}
	gid, err := strconv.ParseUint(g, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("want numeric uid:gid: %w", err)
	}
	return uint32(uid), uint32(gid), nil
}

// healthcheck returns HEALTHCHECK's command (its options skipped).
func healthcheck(t *testing.T, in instruction) []string {
	t.Helper()
	rest := in.args
	for strings.HasPrefix(rest, "--") {
		_, after, _ := strings.Cut(rest, " ")
		rest = strings.TrimSpace(after)
	}
	if rest == "NONE" {
		return nil
	}
	cmd, ok := strings.CutPrefix(rest, "CMD ")
	if !ok {
		t.Fatalf("%v: want HEALTHCHECK [OPTIONS] CMD [...]", in)
	}
	v, err := execForm(in, strings.TrimSpace(cmd))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// resolve returns p, a path in an image, made absolute against dir as
// WORKDIR and the destinations of COPY are.
func resolve(dir, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(dir, p)
}

// path is where p, a path in the image, is in the tree.
func (img *image) path(p string) string {
	return filepath.Join(img.root, filepath.FromSlash(path.Clean("/"+p)))
}

// copy runs a COPY of the final stage into the tree, as a builder does: a
// folder's contents go into the destination; a file goes to the
// destination, or into it when it ends with / or there are several
// sources; --chown owns all it creates.
func (b *builder) copy(st *stage, in instruction, img *image) {
	t := b.t
	t.Helper()
	c, err := st.parseCopy(in)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if c.chown != "" {
		u, g, err := numericUser(c.chown)
		if err != nil {
			t.Fatalf("%v: --chown: %v", in, err)
		}
		uid, gid = int(u), int(g)
	}
	dst := resolve(img.workdir, c.dst)
	intoDir := strings.HasSuffix(c.dst, "/") || len(c.srcs) > 1
	for _, src := range c.srcs {
		var from string
		if c.from == "" {
			if ignored(b.ignore, src) {
				t.Errorf("%v: .dockerignore keeps %s out of the build context", in, src)
			}
			from = filepath.Join(repo, filepath.FromSlash(src))
		} else {
			from = b.stage(c.from).path(src)
		}
		fi, err := os.Stat(from)
		if err != nil {
			t.Fatalf("%v: %v", in, err)
		}
		to := img.path(dst)
		if !fi.IsDir() && intoDir {
			to = filepath.Join(to, path.Base(src))
		}
		if err := copyTree(from, to, uid, gid); err != nil {
			t.Fatalf("%v: %v", in, err)
		}
	}
}

// copyTree copies the file or the folder's contents at from to to, with
// the modes of the sources, owned by uid:gid (root when -1); the folders it
// creates above to are root's.
func copyTree(from, to string, uid, gid int) error {
	if uid < 0 {
		uid, gid = 0, 0
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: only files and folders are copied", p)
		}
		return os.Lchown(target, uid, gid)
	})
}

func copyFile(from, to string, mode fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, mode)
}

// command returns argv as the image runs it: chrooted into the tree, as
// the image's user with no supplementary groups, in its WORKDIR, with its
// environment. A bare program name is looked up in the image's PATH.
func (img *image) command(t *testing.T, argv []string) *exec.Cmd {
	t.Helper()
	prog := argv[0]
	if !strings.Contains(prog, "/") {
		prog = img.lookPath(t, prog)
	}
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Dir = img.workdir
	cmd.Env = append([]string(nil), img.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     img.root,
		Credential: &syscall.Credential{Uid: img.uid, Gid: img.gid, Groups: []uint32{}},
	}
	return cmd
}

func (img *image) lookPath(t *testing.T, prog string) string {
	t.Helper()
	for _, e := range img.env {
		if dirs, ok := strings.CutPrefix(e, "PATH="); ok {
			for _, d := range filepath.SplitList(dirs) {
				if fi, err := os.Stat(img.path(path.Join(d, prog))); err == nil && fi.Mode()&0o111 != 0 {
					return path.Join(d, prog)
				}
			}
		}
	}
	t.Fatalf("%s: not in the image's PATH", prog)
	return ""
}

// output runs argv in the image with stdin and returns its combined output
// and exit code.
func (img *image) output(t *testing.T, stdin string, argv ...string) (string, int) {
	t.Helper()
	cmd := img.command(t, argv)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q in the image: %v", argv, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("%q in the image: still running after 30s; killed\n%s", argv, out.String())
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%q in the image: %v", argv, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}
