package image_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"encoding/xml"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/image/licenses"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/tlscert"
)

// The build args the test builds with, as
// `docker build --build-arg VERSION=… --build-arg REVISION=…` would.
const (
	testVersion  = "v0.0.0-imagetest"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
)

// TestImage builds the image's tree from the Dockerfile and runs it as
// `docker run -p 5222:5222 IMAGE` would: the account is created as
// `docker run IMAGE user add` would, the server starts on the image's own
// config, serves a login, reports the stamped version, answers its health
// check and stops on SIGTERM with status 0.
//
// The only change to the image is the config's two listen addresses,
// moved to free loopback ports because :5222 and :9090 may be taken on
// this machine: the image has no other way to change them, so the test
// replaces its config.yaml with a copy that differs in those two values,
// as an operator mounting a config over /etc/adhocd/config.yaml would.
func TestImage(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("TestImage must run as root in CI: it chroots into the image's tree and runs the server as uid 65532")
		}
		t.Skip("needs root: it chroots into the image's tree and runs the server as uid 65532 (CI=true makes this a failure)")
	}
	start := time.Now()
	b := newBuilder(t, map[string]string{"VERSION": testVersion, "REVISION": testRevision})
	img := b.final()
	t.Logf("image tree built in %v", time.Since(start).Round(time.Millisecond))

	checkContents(t, img)
	cfgPath, cfg := imageConfig(t, img)

	// Move the listeners to free loopback ports.
	c2sAddr, metricsAddr := servertest.FreeAddr(t), servertest.FreeAddr(t)
	moveListeners(t, img, cfgPath, cfg, c2sAddr, metricsAddr, servertest.FreeAddr(t))

	// An account, made before the server starts, with the store on the
	// volume: `docker run -i IMAGE user add JID` (password on stdin).
	const user, password = "tester", "image-test-password"
	jid := user + "@" + cfg.Domain
	if out, code := img.output(t, password+"\n", append(slices.Clone(img.entrypoint), "user", "add", jid)...); code != 0 {
		t.Fatalf("user add %s in the image: exit %d\n%s", jid, code, out)
	}

	// The server: ENTRYPOINT and CMD as they are.
	srv := img.command(t, append(slices.Clone(img.entrypoint), img.cmd...))
	var log servertest.SyncBuffer
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatalf("start %v in the image: %v", srv.Args, err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = syscall.Kill(srv.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("adhocd's log:\n%s", log.String())
		}
	})
	waitReady(t, metricsAddr, done)
	t.Logf("ready %v after the start", time.Since(start).Round(time.Millisecond))

	// The healthcheck is run as the engine runs it: in the container, as
	// its user, in its WORKDIR.
	healthcheckMissing := false
	t.Run("healthcheck", func(t *testing.T) {
		if img.healthcheck == nil {
			t.Fatal("the image has no HEALTHCHECK")
		}
		out, code := img.output(t, "", img.healthcheck...)
		if code != 0 && strings.Contains(out, `unknown command "healthcheck"`) {
			healthcheckMissing = true
			t.Skipf("adhocd has no healthcheck subcommand yet (%q): the HEALTHCHECK is not run", strings.TrimSpace(out))
		}
		if code != 0 {
			t.Fatalf("HEALTHCHECK %q on a running server: exit %d\n%s", img.healthcheck, code, out)
		}
	})

	// An account made while it runs, as `docker exec CONTAINER adhocd user
	// add JID` does: through the server's control socket on the volume,
	// which only the image's user may use.
	const user2, password2 = "tester2", "image-test-password-2"
	jid2 := user2 + "@" + cfg.Domain
	if out, code := img.output(t, password2+"\n", "adhocd", "user", "add", jid2); code != 0 {
		t.Fatalf("adhocd user add %s in the running container: exit %d\n%s", jid2, code, out)
	}

	// A login with the server's own self-signed certificate, from the volume.
	pem, err := os.ReadFile(img.path(path.Join(cfg.Storage.Path, tlscert.SelfSignedFile)))
	if err != nil {
		t.Fatalf("the server's certificate on the volume: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("the server's certificate: no PEM certificate")
	}
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: cfg.Domain}
	c, err := servertest.Connect(t, c2sAddr, tlsCfg, cfg.Domain, user, password)
	if err != nil {
		t.Fatalf("log in as %s over STARTTLS: %v", jid, err)
	}
	if _, err := servertest.Connect(t, c2sAddr, tlsCfg, cfg.Domain, user2, password2); err != nil {
		t.Fatalf("log in as %s (added while running) over STARTTLS: %v", jid2, err)
	}

	// The version stamped by the build (XEP-0092 on the server JID).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := c.IQ(ctx, `<iq type='get' id='version1' to='`+cfg.Domain+`'><query xmlns='jabber:iq:version'/></iq>`)
	if err != nil {
		t.Fatalf("XEP-0092 version query: %v", err)
	}
	var v struct {
		Query struct {
			Name    string `xml:"name"`
			Version string `xml:"version"`
		} `xml:"jabber:iq:version query"`
	}
	if err := xml.Unmarshal([]byte(reply), &v); err != nil {
		t.Fatalf("version reply %s: %v", reply, err)
	}
	if v.Query.Version != testVersion {
		t.Errorf("XEP-0092 version = %q (%s), want the build arg VERSION %q", v.Query.Version, reply, testVersion)
	}

	// And the version command says the same.
	if out, code := img.output(t, "", "adhocd", "version"); code != 0 || !strings.Contains(out, testVersion) {
		t.Errorf("adhocd version in the image: exit %d, %q; want %q in it", code, out, testVersion)
	}

	// Metrics on metrics.listen, counting those logins.
	if body := get(t, "http://"+metricsAddr+"/metrics"); !strings.Contains(body, "adhocd_logins_total") {
		t.Errorf("/metrics has no adhocd_logins_total:\n%.2000s", body)
	}

	// SIGTERM, as `docker stop` sends, by PID.
	stopAt := time.Now()
	if err := syscall.Kill(srv.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("adhocd still runs 10s after SIGTERM")
	}
	took := time.Since(stopAt)
	if code := srv.ProcessState.ExitCode(); code != 0 {
		t.Errorf("adhocd exited with status %d after SIGTERM, want 0", code)
	}
	if took > 5*time.Second {
		t.Errorf("adhocd took %v to stop after SIGTERM, want under 5s", took)
	}
	t.Logf("stopped %v after SIGTERM, status %d", took.Round(time.Millisecond), srv.ProcessState.ExitCode())

	if !healthcheckMissing && img.healthcheck != nil {
		if out, code := img.output(t, "", img.healthcheck...); code != 1 {
			t.Errorf("HEALTHCHECK on a stopped server: exit %d, want 1\n%s", code, out)
		}
	}

	// What the server wrote on the volume is the image user's, and it
	// wrote nowhere else it could (a read-only root file system is fine).
	checkOwned(t, img, cfg.Storage.Path)
	for _, d := range []string{"/tmp", "/home/nonroot"} {
		if entries, err := os.ReadDir(img.path(d)); err != nil || len(entries) > 0 {
			t.Errorf("%s in the image after a run: %v %v; want it empty", d, entries, err)
		}
	}
}

// checkContents checks the tree's files that the image promises: static
// binaries, the licence and the third-party notices, and the labels.
func checkContents(t *testing.T, img *image) {
	t.Helper()
	if len(img.entrypoint) == 0 {
		t.Fatal("the image has no ENTRYPOINT")
	}
	for _, bin := range []string{img.entrypoint[0], "/usr/local/bin/adhocctl"} {
		f, err := elf.Open(img.path(bin))
		if err != nil {
			t.Fatalf("%s in the image: %v", bin, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked; the distroless static base has no libc", bin)
			}
		}
		f.Close()
	}

	lic, err := os.ReadFile(filepath.Join(repo, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if got := licenses.Identify(lic); !slices.Equal(got, []string{"Apache-2.0"}) || img.labels["org.opencontainers.image.licenses"] != "Apache-2.0" {
		t.Errorf("LICENSE is %v and the image's licence label %q, want both Apache-2.0", got, img.labels["org.opencontainers.image.licenses"])
	}
	for _, f := range []string{"LICENSE", "NOTICE"} {
		want, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(img.path("/usr/share/doc/adhocd/" + f)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("/usr/share/doc/adhocd/%s in the image: not the repository's (%v)", f, err)
		}
	}
	// The notices cover every module the binaries link.
	idx, err := os.ReadFile(img.path("/usr/share/doc/adhocd/third-party/" + licenses.IndexFile))
	if err != nil {
		t.Fatalf("the third-party notices in the image: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := licenses.Collect(ctx, repo, "./cmd/adhocd", "./cmd/adhocctl")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if !strings.Contains(string(idx), "\n"+n.Module+"\t"+n.Version+"\t") {
			t.Errorf("the image's %s does not list %s %s", licenses.IndexFile, n.Module, n.Version)
		}
		for _, f := range n.Files {
			if _, err := os.Stat(img.path("/usr/share/doc/adhocd/third-party/" + filepath.ToSlash(n.Path()) + "/" + filepath.Base(f))); err != nil {
				t.Errorf("the image lacks %s's %s: %v", n.Module, filepath.Base(f), err)
			}
		}
	}

	for _, k := range []string{"title", "description", "version", "revision", "licenses", "source"} {
		if img.labels["org.opencontainers.image."+k] == "" {
			t.Errorf("the image has no org.opencontainers.image.%s label", k)
		}
	}
	if got := img.labels["org.opencontainers.image.version"]; got != testVersion {
		t.Errorf("org.opencontainers.image.version = %q, want the build arg %q", got, testVersion)
	}
	if got := img.labels["org.opencontainers.image.revision"]; got != testRevision {
		t.Errorf("org.opencontainers.image.revision = %q, want the build arg %q", got, testRevision)
	}
}

// imageConfig returns the path of the config the image's CMD names (or the
// default config.yaml in WORKDIR) and the config loaded with the server's
// own loader, and checks it against the Dockerfile: the store on a VOLUME
// owned by the image's user, the listeners on the EXPOSEd ports.
func imageConfig(t *testing.T, img *image) (string, config.Config) {
	t.Helper()
	p := path.Join(img.workdir, "config.yaml")
	args := append(slices.Clone(img.entrypoint), img.cmd...)
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			p = resolve(img.workdir, v)
		} else if a == "--config" && i+1 < len(args) {
			p = resolve(img.workdir, args[i+1])
		}
	}
	cfg, err := config.Load(img.path(p))
	if err != nil {
		t.Fatalf("the image's config %s: %v", p, err)
	}
	// Load made storage.path absolute in this machine's terms; in the image
	// it must already be absolute, on a volume.
	raw, err := config.Parse(mustRead(t, img.path(p)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage.Path = raw.Storage.Path
	if !path.IsAbs(cfg.Storage.Path) || !slices.Contains(img.volumes, cfg.Storage.Path) {
		t.Errorf("storage.path %q: want an absolute path that is a VOLUME (%q)", cfg.Storage.Path, img.volumes)
	}
	fi, err := os.Stat(img.path(cfg.Storage.Path))
	if err != nil {
		t.Fatalf("storage.path %s in the image: %v", cfg.Storage.Path, err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != img.uid || st.Gid != img.gid {
		t.Errorf("storage.path %s is owned by %d:%d, want the image's user %d:%d", cfg.Storage.Path, st.Uid, st.Gid, img.uid, img.gid)
	}

	if cfg.Metrics.Listen == "" {
		t.Error("metrics.listen is empty in the image's config: /metrics and the probes are off")
	}
	var ports []string
	for _, l := range []string{cfg.C2S.Listen, cfg.S2S.Listen, cfg.Metrics.Listen} {
		if _, port, err := net.SplitHostPort(l); err == nil {
			ports = append(ports, port)
		}
	}
	var exposed []string
	for _, e := range img.exposed {
		exposed = append(exposed, strings.TrimSuffix(e, "/tcp"))
	}
	slices.Sort(ports)
	slices.Sort(exposed)
	if !slices.Equal(ports, exposed) {
		t.Errorf("EXPOSE %v, but the config listens on %v (c2s.listen, s2s.listen, metrics.listen)", exposed, ports)
	}
	return p, cfg
}

// moveListeners rewrites the image's config with c2s.listen,
// metrics.listen and s2s.listen replaced, and checks with the loader that
// nothing else changed.
func moveListeners(t *testing.T, img *image, p string, cfg config.Config, c2s, metrics, s2s string) {
	t.Helper()
	text := string(mustRead(t, img.path(p)))
	for _, r := range [][2]string{{cfg.C2S.Listen, c2s}, {cfg.Metrics.Listen, metrics}, {cfg.S2S.Listen, s2s}} {
		old := strconv.Quote(r[0])
		if n := strings.Count(text, old); n != 1 {
			t.Fatalf("the image's config has %s %d times; the test replaces it once", old, n)
		}
		text = strings.Replace(text, old, strconv.Quote(r[1]), 1)
	}
	if err := os.WriteFile(img.path(p), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	moved, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if moved.C2S.Listen != c2s || moved.Metrics.Listen != metrics || moved.S2S.Listen != s2s {
		t.Fatalf("moved config listens on %s, %s and %s, want %s, %s and %s", moved.C2S.Listen, moved.Metrics.Listen, moved.S2S.Listen, c2s, metrics, s2s)
	}
	moved.C2S.Listen, moved.Metrics.Listen, moved.S2S.Listen = cfg.C2S.Listen, cfg.Metrics.Listen, cfg.S2S.Listen
	if !reflect.DeepEqual(moved, cfg) {
		t.Fatalf("the moved config differs in more than the listeners:\n%+v\n%+v", moved, cfg)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitReady polls /readyz until the server serves, or fails when it exits
// or takes too long.
func waitReady(t *testing.T, metricsAddr string, exited <-chan struct{}) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatal("adhocd exited before it was ready")
		default:
		}
		if resp, err := client.Get("http://" + metricsAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("adhocd not ready (/readyz) within 20s")
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// checkOwned checks that everything under dir in the image belongs to the
// image's user.
func checkOwned(t *testing.T, img *image, dir string) {
	t.Helper()
	var n int
	err := filepath.WalkDir(img.path(dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != img.uid || st.Gid != img.gid {
			t.Errorf("%s is owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, img.uid, img.gid)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Errorf("%s holds nothing after a run", dir)
	}
}
